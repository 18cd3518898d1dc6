"""`prepare_dataset` on the real files: seconds per dataset, against a plain-Python loop.

For each dataset found under $RECALIGN_DATA_DIR (default ../shared/data) it measures

- `prepare`: the full `prepare_dataset` (vectorised polars parsing with line-precise
  validation, ordering, id assignment, item text, Parquet + stats + manifest written and
  read back);
- `read_assemble`: the reader and `assemble` only (the same work as the loop, in
  memory, plus full validation, dense ids and de-duplication);
- `loop` (the baseline): the same reading done line by line in Python (split, int(),
  per-user lists, a stable sort per user, clean_text per item) — reading only, nothing
  written, so the ratio understates the gap.

Prints one JSON object: median seconds of `--repeats` runs per mode and the ratios
loop/read_assemble and loop/prepare.

    python bench/bench_data_prepare.py --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path

from recalign.data.prepare import assemble, prepare_dataset
from recalign.data.registry import DATASETS as SPECS
from recalign.data.text import clean_text

DATASETS = {
    "amazon2014-beauty": "amazon2014/beauty",
    "amazon2014-toys": "amazon2014/toys",
    "movielens-100k": "movielens-100k",
}


def loop_s3rec(folder: Path) -> int:
    sequences = {}
    for line in (folder / "sequences.txt").read_text().splitlines():
        user, *items = (int(v) for v in line.split())
        sequences[user] = items
    texts = {}
    for line in (folder / "items.tsv").read_text().splitlines()[1:]:
        item_id, _asin, title, short, _attributes = line.split("\t")
        text = clean_text(title) or clean_text(short) or f"item {item_id}"
        while text in texts:
            text += " (2)"
        texts[text] = int(item_id)
    return len(sequences)


def loop_recbole(folder: Path) -> int:
    rows: dict[int, list[tuple[int, int, int, float]]] = {}
    lines = (folder / "ml-100k.inter").read_text().splitlines()[1:]
    for order, line in enumerate(lines):
        user, item, rating, timestamp = line.split("\t")
        rows.setdefault(int(user), []).append(
            (int(float(timestamp)), order, int(item), float(rating))
        )
    sequences = {user: [r[2] for r in sorted(events)] for user, events in rows.items()}
    texts = {}
    for line in (folder / "ml-100k.item").read_text().splitlines()[1:]:
        item_id, title, year, _classes = line.split("\t")
        text = clean_text(title)
        if text in texts:
            text = f"{text} ({year})"
        texts[text] = int(item_id)
    return len(sequences)


def median_seconds(run, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    root = Path(
        os.environ.get("RECALIGN_DATA_DIR", Path(__file__).resolve().parents[2] / "shared/data")
    )
    results = {}
    for name, sub in DATASETS.items():
        folder = root / sub
        if not folder.is_dir():
            continue
        loop = loop_recbole if name.startswith("movielens") else loop_s3rec
        with tempfile.TemporaryDirectory() as out:
            prepare = median_seconds(partial(prepare_dataset, name, out, folder), args.repeats)
        reader = SPECS[name].reader
        in_memory = median_seconds(lambda r=reader, f=folder: assemble(r(f)), args.repeats)
        baseline = median_seconds(partial(loop, folder), args.repeats)
        results[name] = {
            "prepare_s": round(prepare, 3),
            "read_assemble_s": round(in_memory, 3),
            "loop_read_only_s": round(baseline, 3),
            "ratio_loop_over_read_assemble": round(baseline / in_memory, 2),
            "ratio_loop_over_prepare": round(baseline / prepare, 2),
        }
    print(json.dumps({"repeats": args.repeats, "cpu_count": os.cpu_count(), **results}, indent=2))


if __name__ == "__main__":
    main()
