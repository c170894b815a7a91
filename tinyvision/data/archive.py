"""Read-only access to a dataset source that is either a folder or an archive (zip, tar[.gz]).

Readers list and read members by their POSIX path relative to the source, so the same
reader works on the official zip and on its extracted folder. We never extract: reading
members in place avoids writing 100k small files, and a member whose path would land
outside an extraction folder (absolute, or with '..') is refused outright.
"""
from __future__ import annotations

import os
import posixpath
import tarfile
import zipfile
from pathlib import Path

from tinyvision.errors import TinyVisionError

# Finder/Explorer droppings that appear in user-made zips and folders.
JUNK_NAMES = {".DS_Store", "Thumbs.db", "desktop.ini"}


def is_junk(name: str) -> bool:
    base = posixpath.basename(name)
    return base in JUNK_NAMES or base.startswith("._") or "__MACOSX/" in name


def check_member_name(archive: Path, name: str) -> None:
    """Refuse a member whose path would escape the folder it is extracted to."""
    norm = posixpath.normpath(name)
    if name.startswith(("/", "\\")) or norm == ".." or norm.startswith("../") or "\\.." in name or (
        len(name) > 1 and name[1] == ":"
    ):
        raise TinyVisionError(f"{archive}: refusing archive entry {name!r}: its path leads outside the extraction folder")


class Source:
    """A folder or an archive. `names()` lists file members; `read(name)` returns bytes."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.exists():
            raise TinyVisionError(f"{self.path}: no such file or folder")
        self._zip = self._tar = None
        self._tar_members: dict[str, tarfile.TarInfo] = {}
        if self.path.is_dir():
            self.kind = "dir"
        elif zipfile.is_zipfile(self.path):
            self.kind = "zip"
        elif tarfile.is_tarfile(self.path):
            self.kind = "tar"
        else:
            raise TinyVisionError(f"{self.path}: not a folder, zip or tar archive")
        self._names = self._list()

    def _list(self) -> list[str]:
        self._dirs: set[str] = set()
        if self.kind == "dir":
            out = []
            for root, dirs, files in os.walk(self.path):
                dirs.sort()
                rel = Path(root).relative_to(self.path).as_posix()
                if rel != ".":
                    self._dirs.add(rel)
                for f in sorted(files):
                    out.append(f if rel == "." else f"{rel}/{f}")
            return [n for n in out if not is_junk(n)]
        if self.kind == "zip":
            infos = self._open_zip().infolist()
            for i in infos:
                check_member_name(self.path, i.filename)
            self._dirs = {i.filename.rstrip("/") for i in infos if i.is_dir()}
            return [i.filename for i in infos if not i.is_dir() and not is_junk(i.filename)]
        tf = self._open_tar()
        for m in tf.getmembers():
            check_member_name(self.path, m.name)
            if m.isfile() and not is_junk(m.name):
                self._tar_members[m.name] = m
            elif m.isdir():
                self._dirs.add(m.name.rstrip("/"))
        return list(self._tar_members)

    def _open_zip(self) -> zipfile.ZipFile:
        if self._zip is None:
            self._zip = zipfile.ZipFile(self.path)
        return self._zip

    def _open_tar(self) -> tarfile.TarFile:
        if self._tar is None:
            self._tar = tarfile.open(self.path)
        return self._tar

    def names(self) -> list[str]:
        return self._names

    def dirs(self) -> set[str]:
        """Every folder, including empty ones and those only implied by file paths."""
        out = set(self._dirs)
        for n in self._names:
            parts = n.split("/")[:-1]
            out.update("/".join(parts[: i + 1]) for i in range(len(parts)))
        return out

    def find(self, basename: str) -> str | None:
        """The shortest member path whose last component is `basename` (locates the dataset root)."""
        hits = [n for n in self._names if posixpath.basename(n) == basename]
        return min(hits, key=len) if hits else None

    def read(self, name: str) -> bytes:
        try:
            if self.kind == "dir":
                return (self.path / name).read_bytes()
            if self.kind == "zip":
                return self._open_zip().read(name)
            f = self._open_tar().extractfile(self._tar_members[name])
            return f.read()
        except (OSError, KeyError, zipfile.BadZipFile, tarfile.TarError) as e:
            raise TinyVisionError(f"{self.display(name)}: cannot read ({e})") from e

    def display(self, name: str) -> str:
        """How to name a member in an error message."""
        return str(self.path / name) if self.kind == "dir" else f"{self.path}!{name}"

    def __getstate__(self):  # picklable for worker processes: reopen lazily there
        state = self.__dict__.copy()
        state["_zip"] = state["_tar"] = None
        return state
