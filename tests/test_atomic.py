"""Atomic writes: a failed write keeps the old file and leaves no temp file."""
import pytest

from tinyvision.atomic import replacing, write_text


def test_failed_write_keeps_old_file_and_no_temp(tmp_path):
    target = tmp_path / "summary.json"
    write_text(target, "old")
    with pytest.raises(RuntimeError):
        with replacing(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]
    write_text(target, "new")
    assert target.read_text() == "new" and len(list(tmp_path.iterdir())) == 1
