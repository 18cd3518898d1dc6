"""Peak memory of `prepare` + `samples generate` when one item has a 10 MB title.

An operator found that a 10 MB title passed `prepare` (the word budget does not cap
characters) and took `samples generate` on 40 users to 8.1 GB RSS. This builds a small
MovieLens-100K-format source twice — 40 users x 8 ratings over 60 items:

- `normal` (the baseline): every title ordinary ("Movie 7");
- `giant`: item 1's title one 10 MB word, item 2's twenty 500 KB words; both items in
  every user's history;

and runs `recalign data prepare movielens-100k` then `recalign samples generate` on
each, every command in its own process. Peak RSS comes from `os.wait4` (that process
alone); a watchdog kills a command whose RSS passes `--limit-mb` (so the unfixed code
can be measured without taking the machine) and reports it as killed.

Prints one JSON object: per source and command the median peak RSS (MB) and wall
seconds of `--repeats` runs, whether any run was killed, and the ratio giant/normal of
the peak RSS.

    python bench/bench_bounded_inputs.py --repeats 3
    python bench/bench_bounded_inputs.py --src ../main/src --limit-mb 2048  # another checkout
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

REPO = Path(__file__).resolve().parents[1]
TEN_MB = 10_000_000


def write_source(directory: Path, giant: bool) -> Path:
    """`u.data` + `u.item` in the GroupLens layout (the format the reader expects)."""
    directory.mkdir(parents=True)
    ratings = [
        (u, 1 if k == 0 else 2 if k == 1 else (u * 7 + k) % 58 + 3, k % 5 + 1, 1000 + k)
        for u in range(1, 41)
        for k in range(8)
    ]
    titles = {i: f"Movie {i} (1995)" for i in range(1, 61)}
    if giant:
        titles[1] = "x" * TEN_MB
        titles[2] = " ".join(["y" * (TEN_MB // 20)] * 20)
    (directory / "u.data").write_text("".join("\t".join(map(str, r)) + "\n" for r in ratings))
    flags = "|".join(["0"] * 8 + ["1"] + ["0"] * 10)
    lines = [f"{i}|{t}|01-Jan-1995||http://x|{flags}\n" for i, t in titles.items()]
    (directory / "u.item").write_bytes("".join(lines).encode("latin-1"))
    return directory


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def run(args: list[str], env: dict[str, str], limit_mb: float) -> dict:
    """One command in its own process: wall seconds, peak RSS, killed by the watchdog?"""
    start = time.perf_counter()
    # stderr to a file, not a pipe: a chatty child never blocks on a full pipe.
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "recalign", *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        killed = False
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if not killed and _rss_mb(process.pid) > limit_mb:
                process.kill()
                killed = True
            time.sleep(0.02)
        seconds = time.perf_counter() - start
        returncode = os.waitstatus_to_exitcode(status)
        process.returncode = returncode  # reaped by wait4: keep Popen from waiting again
        log.seek(0)
        error = log.read().decode(errors="replace")[-500:]
    if returncode != 0 and not killed:
        raise RuntimeError(f"{' '.join(args)} failed ({returncode}): {error}")
    return {"seconds": seconds, "peak_mb": usage.ru_maxrss / 1024, "killed": killed}


def measure(source: Path, work: Path, env: dict[str, str], limit_mb: float) -> dict:
    data, samples = work / "data", work / "samples"
    prepare = run(
        ["data", "prepare", "movielens-100k", "--source", str(source), "--out", str(data)],
        env,
        limit_mb,
    )
    if prepare["killed"]:
        return {"prepare": prepare}
    generate = run(["samples", "generate", str(data), "--out", str(samples)], env, limit_mb)
    return {"prepare": prepare, "generate": generate}


def summarise(runs: list[dict]) -> dict:
    out = {}
    for command in ("prepare", "generate"):
        values = [r[command] for r in runs if command in r]
        if values:
            out[command] = {
                "peak_mb": statistics.median(v["peak_mb"] for v in values),
                "seconds": statistics.median(v["seconds"] for v in values),
                "killed": any(v["killed"] for v in values),
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--src", type=Path, default=REPO / "src", help="recalign's src folder")
    parser.add_argument("--limit-mb", type=float, default=4096, help="kill a run above this RSS")
    options = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(options.src.resolve())}
    results: dict = {"src": str(options.src), "limit_mb": options.limit_mb}
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("normal", "giant"):
            source = write_source(Path(tmp) / name / "source", giant=name == "giant")
            runs = []
            for repeat in range(options.repeats):
                runs.append(
                    measure(source, Path(tmp) / name / f"run{repeat}", env, options.limit_mb)
                )
            results[name] = summarise(runs)
    results["ratio_giant_normal_peak"] = {
        command: results["giant"][command]["peak_mb"] / results["normal"][command]["peak_mb"]
        for command in ("prepare", "generate")
        if command in results["giant"]
    }
    results["load_average"] = os.getloadavg()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
