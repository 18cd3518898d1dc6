"""Zero-shot evaluation of a model next to popularity on the same users and candidates.

Runs `recalign.evaluation.llm.evaluate_model` (the code path of `recalign evaluate
MODEL_DIR --data DATA`) on a seeded subset of test users under the sampled protocol
(1 target + 99 unseen items, scored by the answer's log-likelihood under the retrieval
prompt), then ranks exactly the same 100 candidates of the same users by training
popularity (`recalign.baselines.pop`), and writes both evaluations (predictions.jsonl +
metrics.json with bootstrap intervals) under `--out`. Chance level: hit@10 = 0.10.

    python bench/bench_zero_shot.py --model models/smollm2-135m --data data/ml100k \\
        --users 40 --out /tmp/zero-shot

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def popularity_on(predictions: list[dict], data: Path, out: Path, *, seed: int, n_boot: int):
    """Rank each user's candidates (those of the LLM's predictions) by popularity."""
    import numpy as np

    from recalign.baselines.pop import Popularity
    from recalign.data.store import load_prepared
    from recalign.evaluation.outputs import write_evaluation
    from recalign.inference.scoring import rank_by_score
    from recalign.ranking import prediction_record

    pop = Popularity()
    pop.fit(load_prepared(data))
    rows = []
    for record in predictions:
        # The LLM's list is a permutation of the shuffled candidates; popularity ties
        # are broken by the seeded shuffle, not by the LLM's order.
        candidates = sorted(record["ranked"])
        rng = np.random.default_rng([seed, int(record["user_id"])])
        candidates = [int(c) for c in rng.permutation(candidates)]
        items, scores = rank_by_score(candidates, pop.counts[candidates])
        rows.append(
            prediction_record(record["user_id"], record["target"], ranked=items, scores=scores)
        )
    return write_evaluation(
        out,
        rows,
        protocol="sampled",
        split="test",
        model="pop (same users, same candidates)",
        exclude_history=True,
        n_boot=n_boot,
        seed=seed,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="anything load_model takes")
    parser.add_argument("--data", type=Path, required=True, help="a prepared dataset")
    parser.add_argument("--users", type=int, default=40)
    parser.add_argument("--negatives", type=int, default=99)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()

    import torch

    load_start = os.getloadavg()
    if args.threads:
        torch.set_num_threads(args.threads)
    from recalign.evaluation.llm import EvalOptions, evaluate_model
    from recalign.evaluation.outputs import read_predictions

    options = EvalOptions(
        protocol="sampled",
        max_users=args.users,
        num_negatives=args.negatives,
        seed=args.seed,
        n_boot=args.n_boot,
    )
    started = time.perf_counter()
    llm = evaluate_model(args.model, args.data, args.out / "llm", options)
    wall = time.perf_counter() - started
    pop = popularity_on(
        read_predictions(args.out / "llm"),
        args.data,
        args.out / "pop",
        seed=args.seed,
        n_boot=args.n_boot,
    )

    def table(metrics: dict) -> dict:
        return {
            key: {"value": round(value, 4), "95%": [round(x, 4) for x in metrics["intervals"][key]]}
            for key, value in metrics["metrics"].items()
        }

    report = {
        "bench": "zero-shot",
        "model": llm["model"],
        "model_info": llm["model_info"],
        "dataset": llm["dataset"],
        "protocol": f"sampled 1 + {args.negatives}",
        "users": llm["users"],
        "seed": args.seed,
        "torch_threads": torch.get_num_threads(),
        "prompt": llm["prompt"],
        "llm": table(llm),
        "pop": table(pop),
        "chance_hit@10": round(10 / (args.negatives + 1), 4),
        "llm_seconds_scoring": llm["seconds"],
        "llm_seconds_per_user": round(llm["seconds"] / llm["users"], 2),
        "wall_seconds_with_loading": round(wall, 1),
        "load_average_start": [round(x, 2) for x in load_start],
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "out": str(args.out),
    }
    json.dump(report, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
