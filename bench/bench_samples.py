"""Sample generation: throughput (end to end, writing included) and peak memory.

Each measurement runs in a fresh child process (peak RSS is that run's alone), with
`generate_samples(DATA_DIR, OUT)` timed from loading the prepared dataset to the last
file written. Measured:

- `beauty/format`: Amazon Beauty, `paper` preset (rating skipped: no ratings), the
  shipped templates compiled to Python format strings (the default);
- `beauty/jinja` (the baseline): the same run with every template rendered by Jinja
  (each template compiled once, `StrictUndefined`);
- `beauty/workers-<N>` (with `--workers N`): the same run as `beauty/format` over N
  worker processes (`generate_samples(workers=N)`: workers generate blocks of users,
  this process writes them); CPU time includes the workers', peak RSS is the largest
  single process;
- `synthetic/<users>`: the synthetic shop at 1x and 10x Beauty's users (`--preset` for
  it, default `paper`), to show that peak memory does not grow with the users (the
  sequences are read and the samples written block by block);
- `beauty/compare` (with `--compare-src DIR`): the same run as `beauty/format` with
  another revision's `src/` first on the path (e.g. `git archive REV src | tar -x`),
  the two alternating run by run so that both see the same load; the ratio of their
  CPU and wall times.

Prints one JSON object: per run the median wall and CPU seconds, samples/s (wall and
per CPU second), peak RSS; the ratio
format/jinja; the ratio of peak RSS at 10x users to 1x.

    python bench/bench_samples.py --repeats 3
    python bench/bench_samples.py --data /path/to/prepared/beauty --skip-synthetic
    python bench/bench_samples.py --data DIR --compare-src /tmp/base/src --skip-baseline \
        --skip-synthetic --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, os, resource, sys, tempfile, time
data, preset, mode = sys.argv[1], sys.argv[2], sys.argv[3]
workers = int(mode.split("-")[1]) if mode.startswith("workers-") else 1
if mode == "jinja":
    import recalign.samples.templates as templates
    templates._pieces = lambda ast: None  # the baseline: Jinja renders every sample
from recalign.samples import generate_samples

def cpu_time():  # this process and its finished worker processes
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system

with tempfile.TemporaryDirectory() as out:
    start, cpu = time.perf_counter(), cpu_time()
    manifest = generate_samples(data, out, preset=preset, seed=0, workers=workers)
    seconds, cpu = time.perf_counter() - start, cpu_time() - cpu
    size = sum(f.stat().st_size for f in __import__("pathlib").Path(out).glob("*.parquet"))
samples = sum(manifest["totals"].values())
rss = [resource.getrusage(who).ru_maxrss / 1024 for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
print(json.dumps({
    "seconds": seconds,
    "samples": samples,
    "samples_per_s": samples / seconds,
    "cpu_seconds": cpu,
    "users": manifest["users"],
    "peak_rss_mb": max(rss),  # the largest single process
    "output_mb": size / 1e6,
}))
"""

BEAUTY_USERS = 22_363


def run_child(data: Path, preset: str, mode: str, src: str | None = None) -> dict:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    if src is not None:  # another revision's sources first on the path
        env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(data), preset, mode],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure(data: Path, preset: str, mode: str, repeats: int) -> dict:
    runs = []
    for _ in range(repeats):
        runs.append(run_child(data, preset, mode))
        print(f"{data.name} {preset} {mode}: {json.dumps(runs[-1])}", file=sys.stderr, flush=True)
    return summarise(runs, preset, mode)


def compare(data: Path, preset: str, src: str, repeats: int) -> dict:
    """This revision against the one in `src`, alternating, same data and preset."""
    ours, theirs = [], []
    for _ in range(repeats):
        for runs, other in ((theirs, src), (ours, None)):
            runs.append(run_child(data, preset, "format", other))
            label = "compare-src" if other else "this"
            print(f"{label}: {json.dumps(runs[-1])}", file=sys.stderr, flush=True)
    mine, base = summarise(ours, preset, "format"), summarise(theirs, preset, "format")
    return {
        "this": mine,
        "compare_src": {**base, "src": src},
        "cpu_ratio_this_vs_src": round(mine["cpu_seconds_median"] / base["cpu_seconds_median"], 3),
        "wall_ratio_this_vs_src": round(mine["seconds_median"] / base["seconds_median"], 3),
    }


def summarise(runs: list[dict], preset: str, mode: str) -> dict:
    best = runs[0]
    seconds = statistics.median(r["seconds"] for r in runs)
    cpu = statistics.median(r["cpu_seconds"] for r in runs)
    return {
        "preset": preset,
        "mode": mode,
        "users": best["users"],
        "samples": best["samples"],
        "seconds_median": round(seconds, 3),
        "seconds_all": [round(r["seconds"], 3) for r in runs],
        "samples_per_s": round(best["samples"] / seconds),
        # CPU time of the one process: the per-core rate, less sensitive to other jobs.
        "cpu_seconds_median": round(cpu, 3),
        "samples_per_cpu_s": round(best["samples"] / cpu),
        "peak_rss_mb": round(max(r["peak_rss_mb"] for r in runs), 1),
        "output_mb": round(best["output_mb"], 1),
    }


def prepared_beauty(work: Path, data: str | None) -> Path:
    if data:
        return Path(data)
    from recalign.data.prepare import prepare_dataset

    root = Path(
        os.environ.get("RECALIGN_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data")
    )
    out = work / "beauty"
    prepare_dataset("amazon2014-beauty", out, source=root / "amazon2014" / "beauty")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="a prepared Beauty directory (default: prepare one)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--skip-synthetic", action="store_true")
    parser.add_argument("--workers", type=int, default=0, help="also time N worker processes")
    parser.add_argument("--synthetic-users", default=f"{BEAUTY_USERS},{10 * BEAUTY_USERS}")
    parser.add_argument("--synthetic-items", type=int, default=12_101)
    parser.add_argument("--synthetic-preset", default="paper")
    parser.add_argument("--compare-src", help="another revision's src/ to time against")
    args = parser.parse_args()

    report: dict = {"cpu_count": os.cpu_count(), "load_average": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        beauty = prepared_beauty(work, args.data)
        if args.compare_src:
            report["beauty/compare"] = compare(beauty, "paper", args.compare_src, args.repeats)
            fast = report["beauty/compare"]["this"]
        else:
            fast = measure(beauty, "paper", "format", args.repeats)
        report["beauty/format"] = fast
        if not args.skip_baseline:
            slow = measure(beauty, "paper", "jinja", args.repeats)
            report["beauty/jinja"] = slow
            report["speedup_format_vs_jinja"] = round(
                slow["seconds_median"] / fast["seconds_median"], 2
            )
        if args.workers > 1:
            parallel = measure(beauty, "paper", f"workers-{args.workers}", args.repeats)
            report[f"beauty/workers-{args.workers}"] = parallel
            report[f"speedup_workers_{args.workers}_vs_1"] = round(
                fast["seconds_median"] / parallel["seconds_median"], 2
            )
        if not args.skip_synthetic:
            from recalign.data.synthetic import write_synthetic

            sizes = [int(n) for n in args.synthetic_users.split(",")]
            for users in sizes:
                data = work / f"synthetic-{users}"
                write_synthetic(data, users=users, items=args.synthetic_items, seed=0, load=False)
                report[f"synthetic/{users}"] = measure(data, args.synthetic_preset, "format", 1)
            small, large = report[f"synthetic/{sizes[0]}"], report[f"synthetic/{sizes[-1]}"]
            report["peak_rss_ratio_large_vs_small"] = round(
                large["peak_rss_mb"] / small["peak_rss_mb"], 2
            )
            report["users_ratio"] = round(sizes[-1] / sizes[0], 1)
        report["load_average_end"] = os.getloadavg()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
