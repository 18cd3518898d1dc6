"""Item representations and cold-start items: title vs semantic ids vs both, under one budget.

For one dataset, trains tiny-t5 from scratch for the same steps (batch, prompt length,
seed) on samples rendered with each item representation, evaluates retrieval (full
ranking over the catalogue by constrained beam search, history excluded) on the same
test users, and scores popularity, BPR-MF and SASRec on the same split and users. Then
the same on a copy of the dataset with a seeded fraction of cold items (`--cold-items`),
reporting warm and cold test cases separately. Prints one JSON object: metrics with 95%
bootstrap intervals, paired differences against `title` (same users), decode users/s
per representation (measured in the same process, so the ratio is what to read) and
wall times.

    python bench/bench_semantic.py --dataset movielens-100k --steps 600 --reprs title,semantic,semantic+title

Reads $RECALIGN_DATA_DIR (default ../shared/data); writes under --work (default a
temporary directory), never into the repository. Needs `recalign[semantic]` for the
default embedder (`--embedder hashing` runs without it).
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

REPO = Path(__file__).resolve().parents[1]
SOURCES = {"movielens-100k": "movielens-100k", "amazon2014-beauty": "amazon2014/beauty"}
KEYS = ("ndcg@10", "hit@10")


def data_root() -> Path:
    return Path(os.environ.get("RECALIGN_DATA_DIR", REPO.parent / "shared" / "data"))


def per_user(predictions: list[dict]) -> dict[int, dict[str, float]]:
    from recalign.evaluation.outputs import per_user_metrics
    from recalign.ranking import FULL_RANKING

    ordered = sorted(predictions, key=lambda r: r["user_id"])
    arrays = per_user_metrics(ordered, FULL_RANKING)
    return {
        int(r["user_id"]): {k: float(arrays[k][i]) for k in KEYS} for i, r in enumerate(ordered)
    }


def summary(metrics: dict) -> dict:
    out = {
        "users": metrics["users"],
        "metrics": {k: round(metrics["metrics"][k], 4) for k in KEYS},
        "intervals": {k: [round(v, 4) for v in metrics["intervals"][k]] for k in KEYS},
    }
    if "by_group" in metrics:
        out["by_group"] = {
            group: {
                "users": value["users"],
                "metrics": {k: round(value["metrics"].get(k, float("nan")), 4) for k in KEYS},
                "intervals": {
                    k: [round(v, 4) for v in value["intervals"].get(k, [])] for k in KEYS
                },
            }
            for group, value in metrics["by_group"].items()
            if isinstance(value, dict)
        }
    return out


def run_variant(data: Path, root: Path, repr_: str, preset: str, args) -> dict:
    from recalign.evaluation.llm import EvalOptions, evaluate_run
    from recalign.samples.generate import generate_samples
    from recalign.training.config import TrainConfig
    from recalign.training.run import train

    samples, run = root / f"samples-{preset}-{repr_}", root / f"run-{preset}-{repr_}"
    times = {}
    start = time.perf_counter()
    mixture = {"max_history": args.max_history, "item_repr": repr_}
    mixture["semantic"] = {"embedder": args.embedder, "levels": args.levels}
    generate_samples(data, samples, preset=preset, seed=args.seed, config=mixture)
    times["samples_s"] = round(time.perf_counter() - start, 1)
    start = time.perf_counter()
    cfg = TrainConfig(
        max_steps=args.steps,
        batch_size=args.batch_size,
        max_source_length=args.max_source_length,
        eval_steps=max(1, args.steps // 2),
        max_eval_samples=200,
        seed=args.seed,
    )
    result = train(data, samples, "tiny-t5", run, config=cfg, progress=False)
    times["train_s"] = round(time.perf_counter() - start, 1)
    options = EvalOptions(max_users=args.max_users, seed=args.seed, n_boot=1000)
    metrics = evaluate_run(run, data, run / "eval" / "retrieval", options)
    times["eval_s"] = metrics.get("seconds")
    return {
        **summary(metrics),
        "decode_users_per_s": metrics.get("users_per_second"),
        "best_eval_loss": result.best_eval_loss,
        **times,
    }


def baseline_overrides(settings: list[str]) -> dict[str, dict[str, object]]:
    """`--baseline-set sasrec.epochs=40` -> {"sasrec": {"epochs": 40}} (YAML scalars)."""
    import yaml

    out: dict[str, dict[str, object]] = {}
    for setting in settings:
        key, _, value = setting.partition("=")
        name, _, field = key.partition(".")
        out.setdefault(name, {})[field] = yaml.safe_load(value)
    return out


def run_baselines(
    data: Path, root: Path, names: list[str], users: set[int], overrides: dict
) -> dict:
    from recalign.baselines.run import run_baseline
    from recalign.evaluation.outputs import compute_metrics, read_predictions
    from recalign.ranking import FULL_RANKING

    out = {}
    for name in names:
        start = time.perf_counter()
        run_baseline(name, data, root / "baselines" / name, overrides=overrides.get(name))
        records = [r for r in read_predictions(root / "baselines" / name) if r["user_id"] in users]
        from recalign.data.store import load_prepared

        metrics = compute_metrics(
            records,
            protocol=FULL_RANKING,
            split="test",
            model=name,
            exclude_history=True,
            cold_items=load_prepared(data).cold_items,
        )
        out[name] = {**summary(metrics), "seconds": round(time.perf_counter() - start, 1)}
    return out


def compare(root: Path, data: Path, reprs: list[str], preset: str, args, tag: str) -> dict:
    from recalign.evaluation.metrics import paired_difference
    from recalign.evaluation.outputs import read_predictions

    variants = {}
    for repr_ in reprs:
        print(f"[{tag}] {repr_} ...", file=sys.stderr, flush=True)
        variants[repr_] = run_variant(data, root, repr_, preset, args)
        print(json.dumps(variants[repr_]), file=sys.stderr, flush=True)
    preds = {r: read_predictions(root / f"run-{preset}-{r}" / "eval" / "retrieval") for r in reprs}
    users = {r["user_id"] for r in preds[reprs[0]]}
    paired = {}
    for repr_ in reprs[1:]:
        for k in KEYS:
            mean, low, high = paired_difference(
                per_user(preds[repr_]), per_user(preds[reprs[0]]), k, seed=args.seed
            )
            paired[f"{repr_} - {reprs[0]} {k}"] = [round(mean, 4), round(low, 4), round(high, 4)]
    names = [b for b in args.baselines.split(",") if b]
    baselines = run_baselines(data, root, names, users, baseline_overrides(args.baseline_set))
    return {"variants": variants, "paired": paired, "baselines": baselines}


def decode_speed(root: Path, data: Path, reprs: list[str], preset: str, args) -> dict:
    """Retrieval users/s of each trained representation on the same users, interleaved
    (repr A, B, C, A, B, C, ...) so that load changes hit every representation alike;
    medians of `--decode-repeats`, and the ratio to the first representation."""
    import statistics

    from recalign.evaluation.llm import EvalOptions, evaluate_run

    rates: dict[str, list[float]] = {r: [] for r in reprs}
    options = EvalOptions(max_users=args.decode_users, seed=args.seed, n_boot=10)
    for repeat in range(args.decode_repeats):
        for repr_ in reprs:
            run = root / f"run-{preset}-{repr_}"
            metrics = evaluate_run(run, data, root / "decode" / f"{repr_}-{repeat}", options)
            rates[repr_].append(metrics["users_per_second"])
    medians = {r: statistics.median(v) for r, v in rates.items()}
    return {
        "users": args.decode_users,
        "repeats": args.decode_repeats,
        "users_per_s": {r: round(m, 2) for r, m in medians.items()},
        "all": rates,
        "ratio_to_first": {r: round(m / medians[reprs[0]], 2) for r, m in medians.items()},
        "loadavg": os.getloadavg(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="movielens-100k")
    parser.add_argument("--reprs", default="title,semantic,semantic+title")
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-history", type=int, default=10)
    parser.add_argument("--max-source-length", type=int, default=192)
    parser.add_argument("--max-users", type=int, default=None)
    parser.add_argument("--baselines", default="pop,bprmf,sasrec")
    parser.add_argument(
        "--baseline-set",
        action="append",
        default=[],
        metavar="NAME.KEY=VALUE",
        help="a baseline setting, e.g. sasrec.epochs=40 (repeatable)",
    )
    parser.add_argument("--embedder", default="all-minilm-l6-v2")
    parser.add_argument("--levels", type=int, default=3)
    parser.add_argument("--cold-items", type=float, default=0.05)
    parser.add_argument("--cold-reprs", default="title,semantic")
    parser.add_argument("--skip-warm", action="store_true")
    parser.add_argument("--decode-only", type=Path, default=None, help="a finished work dir")
    parser.add_argument("--decode-users", type=int, default=100)
    parser.add_argument("--decode-repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from recalign.data.prepare import prepare_dataset

    work = args.work or Path(tempfile.mkdtemp(prefix="recalign-semantic-"))
    results: dict = {"budget": vars(args) | {"work": str(work)}}
    source = data_root() / SOURCES[args.dataset]
    if args.decode_only is not None:
        part = "cold" if (args.decode_only / "cold").is_dir() else "warm"
        data = args.decode_only / ("data-cold" if part == "cold" else "data")
        reprs = (args.cold_reprs if part == "cold" else args.reprs).split(",")
        with contextlib.redirect_stdout(sys.stderr):
            speed = decode_speed(args.decode_only / part, data, reprs, args.preset, args)
        print(json.dumps(speed, indent=2))
        return
    with contextlib.redirect_stdout(sys.stderr):
        if not args.skip_warm:
            data = work / "data"
            if not data.is_dir():
                prepare_dataset(args.dataset, data, source)
            start = time.perf_counter()
            results["warm"] = compare(
                work / "warm", data, args.reprs.split(","), args.preset, args, "warm"
            )
            results["warm"]["seconds"] = round(time.perf_counter() - start, 1)
            print(json.dumps(results["warm"], indent=2), file=sys.stderr, flush=True)
        if args.cold_items > 0:
            cold = work / "data-cold"
            if not cold.is_dir():
                prepare_dataset(
                    args.dataset, cold, source, cold_items=args.cold_items, cold_seed=args.seed
                )
            start = time.perf_counter()
            results["cold"] = compare(
                work / "cold", cold, args.cold_reprs.split(","), args.preset, args, "cold"
            )
            results["cold"]["seconds"] = round(time.perf_counter() - start, 1)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
