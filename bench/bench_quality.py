"""Does the auxiliary data help at this scale? `rec-only` vs `paper`, plus baselines.

For each dataset, trains tiny-t5 from scratch under the same fixed CPU budget (steps,
batch, prompt length, seed) on the `rec-only` and on the `paper` task mixtures, evaluates
retrieval (full ranking over the catalogue, history excluded) on the same seeded test
users, and runs the conventional baselines on the same split. Prints one JSON object:
per dataset the metrics of every variant, the paired difference paper - rec-only with its
95% bootstrap interval, the baselines and the wall time of each part.

    python bench/bench_quality.py --datasets movielens-100k,amazon2014-beauty --steps 1000

Reads $RECALIGN_DATA_DIR (default ../shared/data); everything it writes goes to a
temporary directory (or --work), never into the repository.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

from recalign.evaluation.outputs import compute_metrics, read_predictions
from recalign.pipeline.ablate import run_ablation
from recalign.pipeline.config import parse_config
from recalign.pipeline.stages import baseline
from recalign.ranking import FULL_RANKING

REPO = Path(__file__).resolve().parents[1]
SOURCES = {
    "movielens-100k": "movielens-100k",
    "amazon2014-beauty": "amazon2014/beauty",
    "amazon2014-toys": "amazon2014/toys",
}


def data_root() -> Path:
    return Path(os.environ.get("RECALIGN_DATA_DIR", REPO.parent / "shared" / "data"))


def config_for(name: str, args: argparse.Namespace) -> dict:
    return {
        "name": f"quality-{name}",
        "seed": args.seed,
        "data": {"name": name, "source": str(data_root() / SOURCES[name])},
        "samples": {"max_history": args.max_history},
        "model": {"spec": "tiny-t5"},
        "training": {
            "max_steps": args.steps,
            "batch_size": args.batch_size,
            "max_source_length": args.max_source_length,
            "eval_steps": max(1, args.steps // 4),
            "max_eval_samples": 1000,
        },
        "evaluation": {"protocols": ["retrieval"], "max_users": args.max_users},
        "baselines": {"models": [], "options": {}},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="movielens-100k,amazon2014-beauty")
    parser.add_argument("--presets", default="rec-only,paper")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-history", type=int, default=10)
    parser.add_argument("--max-source-length", type=int, default=192)
    parser.add_argument("--max-users", type=int, default=1000)
    parser.add_argument("--baselines", default="pop,sasrec,sasrec-ce")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--work", type=Path, default=None, help="keep the runs here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    work = args.work or Path(tempfile.mkdtemp(prefix="recalign-quality-"))
    presets = [p for p in args.presets.split(",") if p]
    results: dict = {"budget": vars(args) | {"work": str(work)}, "datasets": {}}
    for name in [d for d in args.datasets.split(",") if d]:
        config = parse_config(config_for(name, args))
        root = work / name
        start = time.perf_counter()
        # stdout is for the JSON alone: whatever a stage prints goes to stderr.
        with contextlib.redirect_stdout(sys.stderr):
            table = run_ablation(
                config,
                root,
                presets,
                [args.seed],
                on_stage=lambda m: print(m, file=sys.stderr, flush=True),
            )
        llm_seconds = time.perf_counter() - start
        variants = {}
        for preset in presets:
            metrics = json.loads(
                (
                    root / preset / f"seed-{args.seed}" / "eval" / "retrieval" / "metrics.json"
                ).read_text()
            )
            train_log = root / preset / f"seed-{args.seed}" / "train" / "train_log.jsonl"
            variants[preset] = {
                "users": metrics["users"],
                "metrics": metrics["metrics"],
                "intervals": metrics["intervals"],
                "train_records": sum(1 for _ in train_log.open()) if train_log.is_file() else 0,
            }
        # The LLM is evaluated on a seeded user sample: score the baselines on the same
        # users (from their per-user predictions), so every row averages the same people.
        llm_users = {
            r["user_id"]
            for r in read_predictions(
                root / presets[0] / f"seed-{args.seed}" / "eval" / "retrieval"
            )
        }
        baselines = {}
        data_dir = root / presets[0] / f"seed-{args.seed}" / "data"
        for model in [b for b in args.baselines.split(",") if b]:
            start_b = time.perf_counter()
            out = root / "baselines" / model
            info = baseline(config, data_dir, model, out)
            same_users = [r for r in read_predictions(out) if r["user_id"] in llm_users]
            subset = compute_metrics(
                same_users, protocol=FULL_RANKING, split="test", model=model, exclude_history=True
            )
            baselines[model] = {
                "metrics_all_users": info.get("metrics", {}),
                "users": subset["users"],
                "metrics": subset["metrics"],
                "intervals": subset["intervals"],
                "seconds": round(time.perf_counter() - start_b, 1),
            }
        results["datasets"][name] = {
            "llm_seconds": round(llm_seconds, 1),
            "variants": variants,
            "paired_difference": {"header": table["header"], "rows": table["rows"]},
            "baselines": baselines,
        }
        print(json.dumps(results["datasets"][name], indent=2), file=sys.stderr, flush=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
