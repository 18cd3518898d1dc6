"""Baselines on Amazon Beauty: full ranking, leave-one-out, history excluded.

Trains each baseline on the train part with early stopping on valid NDCG@10, scores
the test split (history = train + valid) and prints one JSON object: test metrics,
training time, seconds per epoch (median over epochs), the full-evaluation time and
the published SASRec figures to compare with (NDCG@10 0.0318, HR@10 0.0605).

    python bench/bench_baselines.py --models pop,bprmf,sasrec,sasrec-ce --threads 2

Reads $RECALIGN_DATA_DIR/amazon2014/beauty (default ../shared/data). Nothing derived
from the data is written inside the repository (the prepared copy goes to a temp dir).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

from recalign.baselines.evaluate import evaluate_ranking, make_valid_fn
from recalign.baselines.registry import create_baseline
from recalign.data.store import PreparedDataset, load_prepared, write_prepared

PUBLISHED = {"sasrec": {"ndcg@10": 0.0318, "hit@10": 0.0605}}
REPO = Path(__file__).resolve().parents[1]


def beauty_dir() -> Path:
    root = Path(os.environ.get("RECALIGN_DATA_DIR", REPO.parent / "shared" / "data"))
    return root / "amazon2014" / "beauty"


def load_beauty(out: Path, *, raw: bool = False) -> PreparedDataset:
    """Prepare Beauty with the project's preparer when present, else from sequences.txt."""
    source = beauty_dir()
    prepare_dataset = None
    if not raw:
        try:
            from recalign.data.prepare import prepare_dataset
        except ImportError:
            prepare_dataset = None
    if prepare_dataset is not None:
        result = prepare_dataset("amazon2014-beauty", out, source=source)
        return result if isinstance(result, PreparedDataset) else load_prepared(out)
    users, sequences = [], []
    for line in (source / "sequences.txt").read_text().splitlines():
        ids = [int(x) for x in line.split()]
        users.append(ids[0])
        sequences.append(ids[1:])
    num_items = max(max(s) for s in sequences)
    seq_df = pl.DataFrame(
        {"user_id": users, "items": sequences},
        schema={"user_id": pl.Int64, "items": pl.List(pl.Int64)},
    )
    items = pl.DataFrame(
        {
            "item_id": list(range(1, num_items + 1)),
            "source_id": [str(i) for i in range(1, num_items + 1)],
            "text": [f"item {i}" for i in range(1, num_items + 1)],
        }
    )
    return write_prepared(out, "amazon2014-beauty", seq_df, items)


def run_one(name: str, dataset: PreparedDataset, overrides: dict) -> dict:
    model = create_baseline(name, overrides)
    valid_fn = make_valid_fn(dataset)
    report = model.fit(dataset, valid_fn=valid_fn)
    start = time.perf_counter()
    _, metrics = evaluate_ranking(model, dataset, split="test", k=20)
    eval_seconds = time.perf_counter() - start
    epoch_times = [
        b["seconds"] - a["seconds"]
        for a, b in zip(report.history, report.history[1:], strict=False)
        if "valid_ndcg@10" not in b
    ]
    return {
        "model": name,
        "config": model.config.model_dump(),
        "test": {k: round(v, 5) for k, v in metrics.items()},
        "best_valid_ndcg@10": report.best_valid,
        "best_epoch": report.best_epoch,
        "epochs_run": report.epochs,
        "train_seconds": round(report.train_seconds, 1),
        "valid_eval_seconds": round(report.eval_seconds, 1),
        "median_seconds_per_epoch": round(statistics.median(epoch_times), 2)
        if epoch_times
        else None,
        "test_full_eval_seconds": round(eval_seconds, 2),
        "curve": [
            {k: round(v, 5) for k, v in row.items()}
            for row in report.history
            if "valid_ndcg@10" in row
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="pop,bprmf,sasrec,sasrec-ce")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, default=None, help="cap on epochs (all models)")
    parser.add_argument("--raw", action="store_true", help="read sequences.txt directly")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    parser.add_argument("--set", action="append", default=[], help="KEY=VALUE config override")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    import torch

    torch.set_num_threads(args.threads)
    overrides: dict = {}
    for item in args.set:
        key, value = item.split("=", 1)
        overrides[key] = (
            json.loads(value) if value[:1].isdigit() or value in ("true", "false") else value
        )
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        dataset = load_beauty(Path(tmp) / "beauty", raw=args.raw)
        for name in args.models.split(","):
            extra = dict(overrides)
            if name not in ("pop",):
                extra.update({"device": args.device, "num_threads": args.threads})
                if args.epochs:
                    extra["epochs"] = args.epochs
            else:
                extra = {}
            result = run_one(name, dataset, extra)
            results.append(result)
            print(json.dumps(result), file=sys.stderr, flush=True)
    by_name = {r["model"]: r for r in results}
    summary = {
        "dataset": "amazon2014-beauty",
        "protocol": "full ranking over 12,101 items, leave-one-out, history excluded",
        "threads": args.threads,
        "device": args.device,
        "published": PUBLISHED,
        "results": results,
    }
    if "sasrec" in by_name and "sasrec-ce" in by_name:
        bce, ce = by_name["sasrec"], by_name["sasrec-ce"]
        summary["ce_over_bce_ndcg@10"] = round(ce["test"]["ndcg@10"] / bce["test"]["ndcg@10"], 3)
        if bce["median_seconds_per_epoch"] and ce["median_seconds_per_epoch"]:
            summary["ce_over_bce_seconds_per_epoch"] = round(
                ce["median_seconds_per_epoch"] / bce["median_seconds_per_epoch"], 3
            )
    print(json.dumps(summary, indent=2))
    if args.out is not None:
        args.out.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
