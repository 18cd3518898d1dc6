"""What verifying an artefact costs a reader: `load_prepared` with its files checked.

A synthetic dataset is prepared (`--users`, `--items`), then opened `--repeats` times
each way, alternating, in this process:

- `unchecked`: the manifest read, files not checked, the same tables read (the
  baseline: what loading cost before manifests covered files);
- `cached`: `load_prepared` as readers call it: sizes checked, hashes from the cache
  (the writer's hashes, found by each file's stat);
- `cold`: the same with the hash cache emptied before each open (the first read of a
  copied or moved dataset: every byte hashed once).

    python bench/bench_verify.py [--users 20000] [--items 3000] [--repeats 5]

Prints one JSON object: medians in seconds and the ratios to `unchecked`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20000)
    parser.add_argument("--items", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="recalign-bench-verify-") as tmp:
        os.environ["RECALIGN_CACHE"] = str(Path(tmp) / "cache")  # this run's hash cache
        from recalign.artifacts import DatasetDir, hashing
        from recalign.data.prepare import prepare_dataset
        from recalign.data.store import PreparedDataset, load_prepared, validate_tables
        from recalign.fileio import read_parquet, scan_parquet

        data = Path(tmp) / "data"
        prepare_dataset("synthetic", data, users=args.users, items=args.items)
        size = sum(f.stat().st_size for f in data.iterdir())

        def unchecked() -> None:
            directory = DatasetDir.open(data, check_files=False)
            items = read_parquet(directory.items)
            validate_tables(scan_parquet(directory.sequences), items, where=str(data))
            PreparedDataset(name=directory.manifest.name, items=items, path=data, manifest={})

        def cached() -> None:
            hashing._memo.clear()  # as another process: the on-disk cache answers
            load_prepared(data)

        def cold() -> None:
            hashing._memo.clear()
            shutil.rmtree(Path(tmp) / "cache" / hashing.CACHE_NAME, ignore_errors=True)
            load_prepared(data)

        ways = {"unchecked": unchecked, "cached": cached, "cold": cold}
        times: dict[str, list[float]] = {name: [] for name in ways}
        for _ in range(args.repeats):
            for name, fn in ways.items():
                started = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - started)
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(
        json.dumps(
            {
                "users": args.users,
                "items": args.items,
                "dataset_bytes": size,
                "repeats": args.repeats,
                "median_seconds": {k: round(v, 4) for k, v in medians.items()},
                "ratio_to_unchecked": {
                    k: round(v / medians["unchecked"], 3) for k, v in medians.items()
                },
                "load_average": [round(x, 2) for x in os.getloadavg()],
            }
        )
    )


if __name__ == "__main__":
    main()
