"""Generate the README's model table: every registered model, params and MACs at 64x64 / 200 classes.

    python scripts/model_table.py            # print the table
    python scripts/model_table.py --write    # replace the table between the markers in README.md
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

from tinyvision.models import create_model, get_entry, list_models, summarize

BEGIN, END = "<!-- model-table:begin -->", "<!-- model-table:end -->"


def table(size: int = 64, classes: int = 200) -> str:
    rows = [f"| model | family | inputs | params | MACs at {size}x{size} |", "| --- | --- | --- | ---: | ---: |"]
    for name in list_models():
        e = get_entry(name)
        s = e.input_sizes[0] if e.input_sizes else size
        info = summarize(create_model(name, num_classes=classes, in_chans=3), s, 3)
        sizes = ", ".join(map(str, e.input_sizes)) if e.input_sizes else f">= {e.min_size}"
        at = "" if s == size else f" (at {s})"
        rows.append(f"| `{name}` | {e.family} | {sizes} | {info['params']:,} | {info['macs'] / 1e6:,.1f} M{at} |")
    return "\n".join(rows)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--write", action="store_true")
    a = ap.parse_args()
    t = table()
    if not a.write:
        print(t)
        return
    readme = Path(__file__).resolve().parents[1] / "README.md"
    text = readme.read_text()
    new = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), f"{BEGIN}\n{t}\n{END}", text, flags=re.S)
    readme.write_text(new)


if __name__ == "__main__":
    main()
