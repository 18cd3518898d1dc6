"""The built-in demo (`recalign run` with no config): wall time, peak memory, quality.

Runs `python -m recalign run --out FRESH_DIR` in a child process, once per repeat and
load condition: `quiet` (nothing else started) and `busy` (two CPU-bound loops,
`python -c "while True: pass"`, running beside it for the whole run). While it runs,
the resident memory of the child's whole process tree is sampled with psutil every
0.1 s; the stage lines the command prints give each stage's share of the time and its
peak memory. Each run directory is fresh, so nothing is reused from the cache.

Prints one JSON object: per condition the median wall seconds and peak RSS over the
repeats, per-stage seconds (median) and peak RSS (max), the full-ranking HR@10 /
NDCG@10 of the fine-tuned LLM, its `compare` variants (e.g. `rec-only`), popularity,
BPR-MF and SASRec on the LLM's users, the load average seen, and the busy/quiet ratio
of the wall time.

    python bench/bench_demo.py --repeats 3                   # quiet and busy
    python bench/bench_demo.py --conditions busy --repeats 1 --keep /tmp/demo-bench

The command runs as a user would type it: threads chosen by recalign (`--threads` is
passed only when given here).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
BUSY_LOOP = "while True: pass"
STAGE_LINE = re.compile(r"^\s*stage (\S+)")
SAMPLE_SECONDS = 0.1
# Full-ranking rows of the bench: baseline directory name -> label.
BASELINES = {"pop": "pop", "bprmf": "bprmf", "sasrec": "sasrec", "sasrec-ce": "sasrec-ce"}


def tree_rss(process: psutil.Process) -> int:
    """Resident bytes of a process and all its descendants (0 once it has gone)."""
    total = 0
    try:
        procs = [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += proc.memory_info().rss
    return total


def run_once(run_dir: Path, threads: str | None, config: str | None) -> dict:
    """One `recalign run` into a fresh directory: wall time, peak RSS, stage marks."""
    command = [sys.executable, "-m", "recalign"]
    if threads:
        command += ["--threads", threads]
    command += ["run", *([config] if config else []), "--out", str(run_dir)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.setdefault("PYTHONPATH", str(REPO / "src"))
    started = time.perf_counter()
    child = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    process = psutil.Process(child.pid)
    samples: list[tuple[float, int]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append((time.perf_counter() - started, tree_rss(process)))
            done.wait(SAMPLE_SECONDS)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    marks: list[tuple[float, str]] = []
    output: list[str] = []
    assert child.stdout is not None
    for line in child.stdout:
        output.append(line)
        match = STAGE_LINE.match(line)
        if match and "up to date" not in line and " done in " not in line:
            marks.append((time.perf_counter() - started, match.group(1).rstrip(":")))
    code = child.wait()
    wall = time.perf_counter() - started
    done.set()
    sampler.join()
    if code != 0:
        sys.stderr.write("".join(output[-40:]))
        raise SystemExit(f"recalign run failed with exit status {code}")
    return {
        "wall_seconds": round(wall, 1),
        "peak_rss_mb": round(max(rss for _, rss in samples) / 2**20),
        "stages": per_stage(marks, samples, wall),
        "stage_records": stage_records(run_dir),
    }


def per_stage(marks: list[tuple[float, str]], samples: list[tuple[float, int]], wall: float):
    """Seconds from each stage line to the next (the last runs to the end) and the
    peak RSS sampled in between; `startup` is the time before the first stage line."""
    bounds = [(0.0, "startup"), *marks, (wall, "end")]
    stages = {}
    for (start, name), (end, _) in itertools.pairwise(bounds):
        inside = [rss for t, rss in samples if start <= t <= end] or [0]
        stages[name] = {"seconds": round(end - start, 1), "peak_rss_mb": round(max(inside) / 2**20)}
    return stages


def stage_records(run_dir: Path) -> dict[str, float]:
    """The seconds each stage recorded in its cache record (`.NAME.stage.json`)."""
    found = {}
    for path in sorted(run_dir.rglob(".*.stage.json")):
        record = json.loads(path.read_text())
        if record.get("seconds") is not None:
            found[record["stage"]] = record["seconds"]
    return found


def full_ranking(run_dir: Path) -> dict[str, dict[str, float]]:
    """HR@10 / NDCG@10 of the LLM (and its compare variants) and of the baselines, the
    baselines re-scored on exactly the users the LLM was evaluated on."""
    from recalign.evaluation.outputs import compute_metrics, read_predictions

    rows: dict[str, dict[str, float]] = {}
    users: set[int] | None = None
    for path in sorted((run_dir / "eval").rglob("metrics.json")):
        metrics = json.loads(path.read_text())
        if metrics.get("protocol") != "retrieval":
            continue
        rows[metrics["model"]] = pick(metrics)
        users = users or {r["user_id"] for r in read_predictions(path.parent)}
    for name, label in BASELINES.items():
        directory = run_dir / "baselines" / name
        if not (directory / "metrics.json").is_file():
            continue
        raw = json.loads((directory / "metrics.json").read_text())
        records = [r for r in read_predictions(directory) if users is None or r["user_id"] in users]
        metrics = compute_metrics(
            records,
            protocol=raw.get("protocol", "retrieval"),
            split="test",
            model=label,
            exclude_history=raw.get("exclude_history"),
        )
        rows[label] = pick(metrics)
    return rows


def pick(metrics: dict) -> dict[str, float]:
    values = metrics["metrics"]
    return {
        "users": metrics.get("users"),
        "hit@10": round(values["hit@10"], 4),
        "ndcg@10": round(values["ndcg@10"], 4),
    }


def start_busy(count: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(count)]


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        process.wait()


def summarise(runs: list[dict]) -> dict:
    names = list(runs[0]["stages"])
    return {
        "wall_seconds": statistics.median(r["wall_seconds"] for r in runs),
        "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in runs),
        "stage_seconds": {
            n: statistics.median(r["stages"][n]["seconds"] for r in runs if n in r["stages"])
            for n in names
        },
        "stage_peak_rss_mb": {
            n: max(r["stages"][n]["peak_rss_mb"] for r in runs if n in r["stages"]) for n in names
        },
        "full_ranking": runs[0]["full_ranking"],
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--conditions", default="quiet,busy", help="quiet, busy or both")
    parser.add_argument("--busy-loops", type=int, default=2)
    parser.add_argument("--threads", default=None, help="passed as `recalign --threads`")
    parser.add_argument("--config", default=None, help="a run config (default: the demo)")
    parser.add_argument("--keep", default=None, help="keep the run directories here")
    args = parser.parse_args()

    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    result: dict = {
        "command": " ".join(["recalign", *(["--threads", args.threads] if args.threads else [])])
        + " run"
        + (f" {args.config}" if args.config else ""),
        "cpus": psutil.cpu_count(),
        "conditions": {},
    }
    for condition in [c.strip() for c in args.conditions.split(",") if c.strip()]:
        runs = []
        for repeat in range(args.repeats):
            busy = start_busy(args.busy_loops if condition == "busy" else 0)
            try:
                load_before = os.getloadavg()
                run_dir = root / f"{condition}-{repeat}"
                outcome = run_once(run_dir, args.threads, args.config)
                outcome["load_average"] = [round(v, 2) for v in (*load_before, *os.getloadavg())]
            finally:
                stop(busy)
            print(json.dumps({condition: outcome}), file=sys.stderr, flush=True)
            outcome["full_ranking"] = full_ranking(run_dir)
            runs.append(outcome)
        result["conditions"][condition] = summarise(runs)
    conditions = result["conditions"]
    if "quiet" in conditions and "busy" in conditions:
        result["busy_over_quiet"] = round(
            conditions["busy"]["wall_seconds"] / conditions["quiet"]["wall_seconds"], 2
        )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
