"""1 vs 2 torch threads, on a quiet machine and beside busy loops: training, evaluation, SASRec.

The question `recalign.threads` answers: how many threads should a model use when the
machine may be shared? Each workload runs in a fresh child process with a fixed thread
count (`--threads N` semantics: torch, OpenMP and BLAS pools all at N), on the demo's
synthetic shop:

- `train`: tiny-t5 (the demo's size) on the `paper` samples; seconds per training step
  over steps 3..N (tokenizer training, tokenisation and start-up excluded);
- `evaluate`: retrieval (constrained beam search, 20 beams, K = 20) of the trained
  model on a fixed set of test users; seconds per user (model loading excluded);
- `sasrec`: SASRec (BCE) epochs on the shop; seconds per epoch (optimisation only).

Conditions: `quiet` (nothing else started by the bench) and `busy` (two `while True`
Python processes beside it, as a laptop with a browser and a build, or a shared CI
runner). Prints one JSON object: medians per (condition, workload, threads) and the
ratio threads=1 / threads=2 of the time per unit (above 1: two threads are faster).

    python bench/bench_threads.py --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORKLOADS = ("train", "evaluate", "sasrec")
BUSY_LOOP = "while True: pass"


def _env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("RECALIGN_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[name] = str(threads)
    return env


def prepare(work: Path) -> dict[str, Path]:
    """The demo shop, its samples, and a short-trained model to evaluate (made once)."""
    from recalign.data.synthetic import write_synthetic
    from recalign.samples import generate_samples
    from recalign.training import train

    data, samples, run = work / "shop", work / "samples", work / "run"
    if not (data / "manifest.json").is_file():
        write_synthetic(data, users=2000, items=500, seed=0, load=False)
    if not (samples / "manifest.json").is_file():
        generate_samples(data, samples, preset="paper", family="seq2seq")
    if not (run / "model").is_dir():
        from recalign.training.config import make_config

        config = make_config({"max_steps": 60, "eval_steps": 60, "max_eval_samples": 64})
        train(data, samples, "tiny-t5", run, config=config, progress=False)
    return {"data": data, "samples": samples, "run": run}


def worker(name: str, paths: dict[str, Path], units: int, scratch: Path) -> dict[str, float]:
    """Run one workload in this process; return seconds per unit."""
    import torch

    from recalign.threads import configure_threads

    threads = configure_threads()
    if name == "train":
        from transformers import TrainerCallback

        from recalign.training import train
        from recalign.training.config import make_config

        marks: list[float] = []

        class Clock(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                marks.append(time.perf_counter())

        config = make_config(
            {"max_steps": units + 2, "eval_steps": 10_000, "max_train_samples": 4000}
        )
        train(
            paths["data"],
            paths["samples"],
            "tiny-t5",
            scratch / "train",
            config=config,
            callbacks=[Clock()],
            progress=False,
        )
        per_unit = (marks[-1] - marks[1]) / (len(marks) - 2)
    elif name == "evaluate":
        from recalign.evaluation.llm import EvalOptions, evaluate_run

        metrics = evaluate_run(
            paths["run"],
            paths["data"],
            scratch / "eval",
            EvalOptions(protocol="retrieval", max_users=units, seed=0),
        )
        per_unit = metrics["seconds"] / metrics["users"]
    else:
        from recalign.baselines.registry import create_baseline
        from recalign.data import load_prepared

        model = create_baseline("sasrec", {"epochs": units, "seed": 0})
        report = model.fit(load_prepared(paths["data"]))
        per_unit = report.train_seconds / report.epochs
    return {"seconds_per_unit": per_unit, "torch_threads": torch.get_num_threads(), "set": threads}


def _run_child(name: str, threads: int, work: Path, units: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(dir=work) as scratch:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--worker",
                name,
                "--work",
                str(work),
                "--units",
                str(units),
                "--scratch",
                scratch,
            ],
            env=_env(threads),
            capture_output=True,
            text=True,
            check=False,
        )
    if out.returncode != 0:
        raise RuntimeError(f"{name} with {threads} thread(s) failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "bench-threads")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--conditions", default="quiet,busy")
    parser.add_argument("--train-steps", type=int, default=20)
    parser.add_argument("--eval-users", type=int, default=40)
    parser.add_argument("--sasrec-epochs", type=int, default=2)
    parser.add_argument("--worker", choices=WORKLOADS, help=argparse.SUPPRESS)
    parser.add_argument("--units", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--scratch", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.worker:
        paths = prepare(args.work)
        print(json.dumps(worker(args.worker, paths, args.units, args.scratch)))
        return

    prepare(args.work)
    units = {"train": args.train_steps, "evaluate": args.eval_users, "sasrec": args.sasrec_epochs}
    results: dict[str, dict] = {}
    loads: dict[str, list[float]] = {}
    for condition in args.conditions.split(","):
        busy = []
        if condition == "busy":
            busy = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(2)]
            time.sleep(2)
        try:
            for name in args.workloads.split(","):
                runs: dict[int, list[float]] = {1: [], 2: []}
                for _ in range(args.repeats):
                    for threads in (1, 2):  # alternate, so drifting load hits both alike
                        got = _run_child(name, threads, args.work, units[name])
                        runs[threads].append(got["seconds_per_unit"])
                        loads.setdefault(condition, []).append(os.getloadavg()[0])
                medians = {t: statistics.median(v) for t, v in runs.items()}
                results[f"{condition}/{name}"] = {
                    "unit": {"train": "step", "evaluate": "user", "sasrec": "epoch"}[name],
                    "seconds_per_unit_1_thread": round(medians[1], 4),
                    "seconds_per_unit_2_threads": round(medians[2], 4),
                    "runs_1_thread": [round(v, 4) for v in runs[1]],
                    "runs_2_threads": [round(v, 4) for v in runs[2]],
                    "speedup_of_2_threads": round(medians[1] / medians[2], 3),
                }
        finally:
            for process in busy:
                process.kill()
                process.wait()
    summary = {
        "cores": os.cpu_count(),
        "repeats": args.repeats,
        "load_average_1min_seen": {
            c: [round(min(v), 2), round(max(v), 2)] for c, v in loads.items()
        },
        "results": results,
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
