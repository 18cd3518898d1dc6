"""Prompt fitting at tokenization time: what it does to a samples directory, what it costs.

For each `--lengths` budget and a tokenizer (`--model`: a model or run directory), over
the prompts of a samples directory (a seeded subset of `--max-samples` per split, or all):

- `before`: prompts over budget. Before prompts were fitted, training cut these from
  the left; for a causal model with a chat template that cut takes the system prompt
  and `<|im_start|>user` first (`frame_cut_before`), and for a ranking prompt the
  instruction too;
- `after`: `fit_prompts` — prompts shortened, history items dropped, tokens removed,
  item texts cut, prompts that cannot fit even without history — per split and task;
- timing (`--repeats`, median CPU seconds; on `--time-samples` train prompts):
  `encode_prompts` + the old left cut (the baseline, as training did it: `fit_prompts`
  without bounds) against `fit_prompts` with bounds, in the same process, alternating;
  the ratio is the cost of fitting.

Prints one JSON object.

    python bench/bench_fit.py --samples /work/scratch/ml100k-paper-causal-new \\
        --model /work/models/smollm2-135m --lengths 192,256 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl


def _subset(frame: pl.DataFrame, limit: int | None, seed: int) -> pl.DataFrame:
    if limit is None or frame.height <= limit:
        return frame
    rows = np.sort(np.random.default_rng(seed).choice(frame.height, limit, replace=False))
    return frame[rows]


def counts(samples: Path, tokenizer, family: str, budget: int, limit: int | None) -> dict:
    from recalign.models.tokenization import fit_prompts

    out: dict = {}
    totals = {"prompts": 0, "over_budget": 0, "shortened": 0, "cannot_fit": 0}
    for split in ("train", "valid", "test"):
        frame = _subset(pl.read_parquet(samples / f"{split}.parquet"), limit, 0)
        for task in frame.get_column("task").unique(maintain_order=True).to_list():
            part = frame.filter(pl.col("task") == task)
            fitted = fit_prompts(
                tokenizer,
                family,
                part.get_column("input").to_list(),
                part.get_column("history_bounds").to_list(),
                budget,
                quiet=True,
            )
            summary = fitted.summary()
            summary["frame_cut_before"] = summary["over_budget"] if family == "causal" else 0
            out[f"{split}/{task}"] = summary
            for key in totals:
                totals[key] += summary[key]
            print(f"{budget} {split}/{task}: {json.dumps(summary)}", file=sys.stderr, flush=True)
    totals["over_budget_share"] = round(totals["over_budget"] / max(1, totals["prompts"]), 4)
    totals["shortened_share"] = round(totals["shortened"] / max(1, totals["prompts"]), 4)
    return {"per_split_task": out, "total": totals}


def timing(samples: Path, tokenizer, family: str, budget: int, n: int, repeats: int) -> dict:
    from recalign.models.tokenization import fit_prompts

    frame = _subset(pl.read_parquet(samples / "train.parquet"), n, 1)
    texts = frame.get_column("input").to_list()
    bounds = frame.get_column("history_bounds").to_list()

    def before() -> None:  # no bounds: encode, then the old left cut (BOS kept)
        fit_prompts(tokenizer, family, texts, None, budget, quiet=True)

    def after() -> None:
        fit_prompts(tokenizer, family, texts, bounds, budget, quiet=True)

    times: dict[str, list[float]] = {"before": [], "after": []}
    for _ in range(repeats):
        for name, run in (("before", before), ("after", after)):
            start = time.process_time()
            run()
            times[name].append(time.process_time() - start)
    medians = {name: statistics.median(values) for name, values in times.items()}
    return {
        "prompts": len(texts),
        "cpu_seconds": {name: [round(v, 3) for v in values] for name, values in times.items()},
        "prompts_per_cpu_s_before": round(len(texts) / medians["before"]),
        "prompts_per_cpu_s_after": round(len(texts) / medians["after"]),
        "cost_ratio_after_vs_before": round(medians["after"] / medians["before"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", required=True, type=Path)
    parser.add_argument("--model", required=True)
    parser.add_argument("--lengths", default="192,256")
    parser.add_argument("--max-samples", type=int, default=None, help="per split (counts)")
    parser.add_argument("--time-samples", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-counts", action="store_true")
    args = parser.parse_args()

    from recalign.models.loading import load_tokenizer

    tokenizer, family = load_tokenizer(args.model)
    report: dict = {
        "samples": str(args.samples),
        "model": args.model,
        "family": family,
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
    }
    for budget in (int(x) for x in args.lengths.split(",")):
        entry: dict = {}
        if not args.skip_counts:
            entry["counts"] = counts(args.samples, tokenizer, family, budget, args.max_samples)
        entry["timing"] = timing(
            args.samples, tokenizer, family, budget, args.time_samples, args.repeats
        )
        report[f"max_source_length={budget}"] = entry
    report["load_average_end"] = os.getloadavg()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
