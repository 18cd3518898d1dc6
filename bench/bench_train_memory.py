"""Streaming training data: peak RSS against the number of samples, SmolLM2 speed, lengths.

Four measurements, each printing one JSON object. "before" runs the source tree of a
given git revision (extracted once with `git archive`), "after" this checkout's `src`;
every run is its own process, so its peak RSS is its own.

    # peak RSS of `recalign train --model tiny-causal --max-steps 5` (via /usr/bin/time -v)
    python bench/bench_train_memory.py rss --before b9bd113 \\
        --case ml100k=/work/scratch/ml100k:/work/scratch/ml100k-paper-causal \\
        --case shop10x=/tmp/shop10x/data:/tmp/shop10x/samples

    # SmolLM2: samples/s and peak RSS, LoRA and full, before (on a 20k subset) and after
    python bench/bench_train_memory.py smollm --before b9bd113 --model /work/models/smollm2-135m \\
        --data /work/scratch/ml100k --samples /work/scratch/ml100k-paper-causal

    # lengths from bytes vs tokens: the cost of each, padding, samples/s of tiny-causal
    python bench/bench_train_memory.py lengths --data /work/scratch/ml100k \\
        --samples /work/scratch/ml100k-paper-causal --tokenizer /work/models/smollm2-135m \\
        [--train-steps 51 --repeats 2]   # also tiny-causal samples/s with each source

    # validation samples/s over training samples/s (sizes `max_eval_samples: auto`)
    python bench/bench_train_memory.py evalrate --data /work/scratch/ml100k \\
        --case tiny-causal,tiny-causal,/work/scratch/ml100k-paper-causal,full \\
        --case smol-lora,/work/models/smollm2-135m,/work/scratch/ml100k-paper-causal,lora

A run whose RSS passes `--rss-cap-gb` is killed by the bench (the machine is shared) and
reported as `killed_above_gb`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


# --- sources and processes ----------------------------------------------------------------


def source_tree(revision: str | None, work: Path) -> Path:
    """`src` of `revision` (extracted once under `work`), or this checkout's `src`."""
    if revision is None:
        return ROOT / "src"
    target = work / f"src-{revision}"
    if not (target / "src" / "recalign").is_dir():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", revision, "src"], capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target / "src"


def _rss_of_tree(pid: int) -> int:
    """Resident bytes of a process and its children (from /proc)."""
    total = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) * 1024
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except (OSError, AttributeError):
            continue
        pending.extend(int(c) for c in children)
    return total


def run_measured(command: list[str], env: dict, cap_gb: float, timeout: float) -> dict:
    """Run `command` under /usr/bin/time -v; kill it if its RSS passes `cap_gb`."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as timing:
        started = time.perf_counter()
        process = subprocess.Popen(
            ["/usr/bin/time", "-v", "-o", timing.name, *command],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group, so a kill takes its children
        )
        killed: dict = {}

        def watch() -> None:
            while process.poll() is None:
                rss = _rss_of_tree(process.pid)
                if rss > cap_gb * 2**30 or time.perf_counter() - started > timeout:
                    killed.update(rss_gb=rss / 2**30, after_s=time.perf_counter() - started)
                    os.killpg(process.pid, signal.SIGKILL)
                    return
                time.sleep(0.25)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        out, err = process.communicate()
        watcher.join()
        report = timing.read()
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", report)
    result = {
        "returncode": process.returncode,
        "seconds": round(time.perf_counter() - started, 1),
        "peak_rss_mb": round(int(peak.group(1)) / 1024) if peak else None,
        "stdout": out.strip().splitlines()[-1] if out.strip() else "",
    }
    if killed:
        result["killed_above_gb"] = cap_gb
        result["killed_at"] = {k: round(v, 2) for k, v in killed.items()}
    elif process.returncode:
        result["stderr"] = err[-2000:]
    return result


def _env(src: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src), "CUDA_VISIBLE_DEVICES": ""}
    env.setdefault("OMP_NUM_THREADS", "1")  # steady on a shared CPU (docs/MACHINE.md)
    return env


# --- rss: peak RSS of the CLI --------------------------------------------------------------


def bench_rss(args: argparse.Namespace) -> dict:
    results = {}
    for case in args.case:
        name, paths = case.split("=", 1)
        data, samples = paths.split(":", 1)
        rows = _train_rows(Path(samples))
        results[name] = {"train_samples": rows}
        for label, revision in (("before", args.before), ("after", None)):
            src = source_tree(revision, args.work)
            out = Path(tempfile.mkdtemp(dir=args.work, prefix=f"run-{name}-{label}-"))
            command = [sys.executable, "-m", "recalign", "train", "--data", data]
            command += ["--samples", samples, "--model", args.model, "--max-steps", "5"]
            command += ["--out", str(out / "R")]
            measured = run_measured(command, _env(src), args.rss_cap_gb, args.timeout)
            measured["command"] = " ".join(["recalign", *command[3:]])
            results[name][label] = measured
            subprocess.run(["rm", "-rf", str(out)], check=False)
    names = list(results)
    report = {"bench": "train-memory-rss", "model": args.model, "cases": results}
    if len(names) == 2:
        small, large = (results[n]["after"]["peak_rss_mb"] for n in names)
        if small and large:
            report["after_ratio_rss"] = round(large / small, 3)
            report["ratio_samples"] = round(
                results[names[1]]["train_samples"] / results[names[0]]["train_samples"], 2
            )
    return report


def _train_rows(samples: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(samples / "train.parquet").metadata.num_rows


# --- worker: one training run through the Python API --------------------------------------


WORKER = """
import json, resource, sys, tempfile, time
from pathlib import Path
started = time.perf_counter()
from transformers import TrainerCallback
from recalign.training.config import make_config
from recalign.training.run import train

spec = json.loads(sys.argv[1])
marks, evals = {}, []

class Timer(TrainerCallback):
    def on_train_begin(self, args, state, control, **kw):
        marks["begin"] = time.perf_counter()
    def on_step_end(self, args, state, control, **kw):
        marks[state.global_step] = (time.perf_counter(), state.num_input_tokens_seen)
    def on_evaluate(self, args, state, control, metrics=None, **kw):
        evals.append(metrics)

with tempfile.TemporaryDirectory(dir=spec.get("work")) as tmp:
    result = train(spec["data"], spec["samples"], spec["model"], Path(tmp) / "run",
                   config=make_config(spec["config"]), callbacks=[Timer()], progress=False)
steps, warm = spec["config"]["max_steps"], spec["warmup"]
batch = spec["config"]["batch_size"]
(t0, tokens0), (t1, tokens1) = marks[warm], marks[steps]
seconds = t1 - t0
out = {
    "train_samples_per_s": (steps - warm) * batch / seconds,
    # non-padding input tokens (the Trainer's counter): normalises for which batches came
    "input_tokens_per_s": (tokens1 - tokens0) / seconds,
    "input_tokens_per_sample": (tokens1 - tokens0) / ((steps - warm) * batch),
    "seconds_per_step": seconds / (steps - warm),
    "setup_seconds": marks["begin"] - started,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}
if evals and evals[-1].get("eval_runtime"):
    m = evals[-1]
    out["eval_samples_per_s"] = m["eval_samples_per_second"]
    out["eval_over_train_rate"] = m["eval_samples_per_second"] / out["train_samples_per_s"]
print(json.dumps(out))
"""


def run_worker(src: Path, spec: dict, args: argparse.Namespace) -> dict:
    command = [sys.executable, "-c", WORKER, json.dumps(spec)]
    measured = run_measured(command, _env(src), args.rss_cap_gb, args.timeout)
    if measured["returncode"] == 0 and measured["stdout"].startswith("{"):
        measured.update(json.loads(measured.pop("stdout")))
    return measured


# --- smollm: a 135M model, LoRA and full ---------------------------------------------------


def bench_smollm(args: argparse.Namespace) -> dict:
    base = {
        "batch_size": args.batch_size,
        "max_steps": args.steps,
        "eval_steps": args.steps,
        "logging_steps": 1,
        "max_eval_samples": args.eval_samples,
        "learning_rate": 1e-4,
        "max_source_length": 256,
        "warmup_ratio": 0.0,
    }
    runs: dict = {}
    for mode in ("lora", "full"):
        for label, revision in (("before", args.before), ("after", None)):
            config = {**base, "lora": {"enabled": mode == "lora", "r": 16, "alpha": 32}}
            if label == "before":
                config["max_train_samples"] = args.before_train_samples  # the whole split OOMs
            spec = {
                "data": str(args.data),
                "samples": str(args.samples),
                "model": str(args.model),
                "config": config,
                "warmup": 1,
                "work": str(args.work),
            }
            result = run_worker(source_tree(revision, args.work), spec, args)
            result["train_samples"] = config.get("max_train_samples", "all")
            runs.setdefault(mode, {})[label] = result
    return {
        "bench": "train-memory-smollm",
        "model": str(args.model),
        "batch_size": args.batch_size,
        "steps": args.steps,
        "timed_steps": args.steps - 1,
        "load_average": os.getloadavg(),
        "runs": runs,
    }


# --- evalrate: validation samples/s over training samples/s -------------------------------


def bench_evalrate(args: argparse.Namespace) -> dict:
    """The ratio `auto` validation subsets are sized with (training.config.EVAL_SPEEDUP)."""
    runs: dict = {}
    for case in args.case:
        name, model, samples, lora = case.split(",")
        config = {
            "batch_size": args.batch_size,
            "max_steps": args.steps,
            "eval_steps": args.steps,
            "logging_steps": args.steps,
            "max_eval_samples": args.eval_samples,
            "warmup_ratio": 0.0,
            "max_source_length": 256,
            "lora": {"enabled": lora == "lora"},
        }
        spec = {
            "data": str(args.data),
            "samples": samples,
            "model": model,
            "config": config,
            "warmup": 1,
            "work": str(args.work),
        }
        runs[name] = [
            run_worker(source_tree(None, args.work), spec, args) for _ in range(args.repeats)
        ]
    keys = ("train_samples_per_s", "eval_samples_per_s", "eval_over_train_rate")
    return {
        "bench": "train-memory-evalrate",
        "batch_size": args.batch_size,
        "steps": args.steps,
        "eval_samples": args.eval_samples,
        "load_average": os.getloadavg(),
        "median": {
            n: {k: round(statistics.median(r[k] for r in rs), 3) for k in keys}
            for n, rs in runs.items()
        },
        "runs": runs,
    }


# --- lengths: bytes vs tokens --------------------------------------------------------------


def _padding(exact, order, batch: int) -> float:
    import numpy as np

    usable = len(order) // batch * batch
    batches = np.asarray(order[:usable]).reshape(-1, batch)
    padded = exact[batches].max(axis=1).sum() * batch
    return float(1 - exact[batches].sum() / padded)


def bench_lengths(args: argparse.Namespace) -> dict:
    import numpy as np

    sys.path.insert(0, str(ROOT / "src"))
    from recalign.training.data import Lengths
    from recalign.training.sampler import LengthGroupedSampler, ShuffleSampler
    from recalign.training.stream import build_text_set, choose_rows, open_split

    split = open_split(args.samples, "train")
    rows = choose_rows(split.rows, args.max_samples, 0)
    if args.tokenizer == "tiny-causal":
        from recalign.data.store import load_prepared
        from recalign.models.loading import tokenizer_corpus
        from recalign.models.tiny import train_tokenizer
        from recalign.training.stream import head_texts

        corpus = tokenizer_corpus(load_prepared(args.data), head_texts(split, rows, 20_000))
        tokenizer = train_tokenizer(corpus, vocab_size=8000, family="causal")
    else:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    lengths = Lengths(256, 64)
    made = {}
    for source in ("bytes", "tokens"):
        with tempfile.TemporaryDirectory(dir=args.work) as tmp:
            made[source] = build_text_set(
                split,
                rows,
                Path(tmp) / "t.arrow",
                tokenizer=tokenizer,
                family="causal",
                lengths=lengths,
                source=source,
            )
    exact = made["tokens"].lengths
    estimate = made["bytes"].lengths
    padding = {
        source: _padding(exact, list(LengthGroupedSampler(made[source].lengths, 8, seed=0)), 8)
        for source in made
    }
    padding["random"] = _padding(exact, list(ShuffleSampler(exact, seed=0)), 8)
    ranks = [np.argsort(np.argsort(x)) for x in (exact, estimate)]
    report = {
        "bench": "train-memory-lengths",
        "tokenizer": str(args.tokenizer),
        "samples": len(exact),
        "seconds": {s: round(made[s].seconds, 1) for s in made},
        "padding_fraction_batch8": {k: round(v, 4) for k, v in padding.items()},
        "estimate_vs_exact": {
            "rank_correlation": round(float(np.corrcoef(*ranks)[0, 1]), 4),
            "median_relative_error": round(float(np.median(np.abs(estimate - exact) / exact)), 4),
        },
        "load_average": os.getloadavg(),
    }
    if args.train_steps:
        report["tiny_causal_training"] = _length_training(args)
    return report


def _length_training(args: argparse.Namespace) -> dict:
    """samples/s of tiny-causal with each length source, alternating, medians."""
    config = {
        "batch_size": 16,
        "max_steps": args.train_steps,
        "eval_steps": args.train_steps,
        "logging_steps": args.train_steps,
        "max_eval_samples": 32,
        "warmup_ratio": 0.0,
        "max_source_length": 256,
    }
    runs: dict = {"bytes": [], "tokens": []}
    for _ in range(args.repeats):
        for source in runs:
            spec = {
                "data": str(args.data),
                "samples": str(args.samples),
                "model": "tiny-causal",
                "config": {**config, "length_source": source},
                "warmup": 1,
                "work": str(args.work),
            }
            runs[source].append(run_worker(source_tree(None, args.work), spec, args))
    keys = ("train_samples_per_s", "input_tokens_per_s", "setup_seconds", "peak_rss_mb")
    return {
        "steps": args.train_steps,
        "median": {
            s: {k: round(statistics.median(r[k] for r in runs[s]), 3) for k in keys} for s in runs
        },
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--work", type=Path, default=Path(tempfile.gettempdir()) / "recalign-bench-stream"
    )
    parser.add_argument("--rss-cap-gb", type=float, default=12.0)
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per run")
    sub = parser.add_subparsers(dest="what", required=True)
    rss = sub.add_parser("rss", help="peak RSS of the CLI, before and after")
    rss.add_argument("--before", required=True, help="git revision of the 'before' code")
    rss.add_argument("--model", default="tiny-causal")
    rss.add_argument("--case", action="append", required=True, help="NAME=DATA:SAMPLES")
    smol = sub.add_parser("smollm", help="a 135M model: samples/s and peak RSS")
    smol.add_argument("--before", required=True)
    smol.add_argument("--model", type=Path, required=True)
    smol.add_argument("--data", type=Path, required=True)
    smol.add_argument("--samples", type=Path, required=True)
    smol.add_argument("--steps", type=int, default=7)
    smol.add_argument("--batch-size", type=int, default=8)
    smol.add_argument("--eval-samples", type=int, default=32)
    smol.add_argument("--before-train-samples", type=int, default=20_000)
    lengths = sub.add_parser("lengths", help="lengths from bytes vs tokens")
    lengths.add_argument("--data", type=Path, required=True)
    lengths.add_argument("--samples", type=Path, required=True)
    lengths.add_argument("--tokenizer", required=True, help="a model directory, or tiny-causal")
    lengths.add_argument("--max-samples", type=int, default=None)
    lengths.add_argument("--train-steps", type=int, default=0, help="0: no training runs")
    lengths.add_argument("--repeats", type=int, default=2)
    rate = sub.add_parser("evalrate", help="validation over training samples/s (after only)")
    rate.add_argument("--data", type=Path, required=True)
    rate.add_argument("--case", action="append", required=True, help="NAME,MODEL,SAMPLES,full|lora")
    rate.add_argument("--steps", type=int, default=11)
    rate.add_argument("--batch-size", type=int, default=16)
    rate.add_argument("--eval-samples", type=int, default=256)
    rate.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    benches = {
        "rss": bench_rss,
        "smollm": bench_smollm,
        "lengths": bench_lengths,
        "evalrate": bench_evalrate,
    }
    bench = benches[args.what]
    report = bench(args)
    report["load_average_end"] = os.getloadavg()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
