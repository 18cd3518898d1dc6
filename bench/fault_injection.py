"""Kill recalign at random points (kill -9 and SIGTERM), resume it, count silent corruptions.

    python bench/fault_injection.py --trials 32 --seed 0 > fault.json

For each stage — `data prepare`, `samples generate`, `train` and `recalign run` — the
script first runs the command once, uninterrupted, as the reference. Each trial then
starts the same command into a fresh directory, sends SIGKILL or SIGTERM after a seeded
random delay within the reference's duration, and checks two things:

1. **Right after the kill**: if the artefact claims to be complete (its manifest says
   so) its content must equal the reference's. A complete-looking artefact with other
   content is a *silent corruption*; an artefact that is absent or says "incomplete" is
   fine (readers refuse it).
2. **After the operator's natural next step** (the same command again; for `train`,
   the same command with `--resume`, as a requeued job runs it): it must exit 0 with content equal to the
   reference (training resumed from a checkpoint: the same weights within 1e-5). Exit 0
   with other content is a silent corruption; a non-zero exit is a *loud failure*.

The JSON it prints counts both per stage and signal, with the trials' details.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import polars as pl
import yaml

TINY_T5 = {
    "d_model": 32,
    "d_ff": 64,
    "num_layers": 1,
    "num_decoder_layers": 1,
    "num_heads": 2,
    "d_kv": 16,
}
TRAINING = {
    "max_steps": 24,
    "batch_size": 8,
    "eval_steps": 6,
    "logging_steps": 1,
    "max_eval_samples": 16,
    "vocab_size": 300,
    "warmup_ratio": 0.0,
    "model_overrides": TINY_T5,
}
RUN = {
    "name": "faults",
    "data": {"name": "synthetic", "options": {"users": 80, "items": 60}},
    "samples": {"max_history": 4, "preset": "rec-only"},
    "training": TRAINING,
    "evaluation": {"protocols": ["ranking"], "max_users": 8, "batch_size": 4},
    "baselines": {"models": ["pop"]},
    "report": True,
}
SIGNALS = {"kill": signal.SIGKILL, "term": signal.SIGTERM}


@dataclass
class Trial:
    stage: str
    signal: str
    delay_s: float
    killed_exit: int | None = None  # None: it had finished before the signal
    killed_said: str = ""  # the last line the signalled process printed to stderr
    claimed_complete_after_kill: bool = False
    silent_after_kill: bool = False
    rerun_exit: int | None = None
    silent_after_rerun: bool = False
    loud_failure: bool = False
    detail: str = ""


@dataclass
class Stage:
    """One command to interrupt: how to run it, resume it and compare it with the reference."""

    name: str
    command: Callable[[Path], list[str]]
    resume: Callable[[Path], list[str]]
    claims_complete: Callable[[Path], bool]
    differs: Callable[[Path, Path], str]  # "" when equal, else what differs
    reference: Path = field(default=Path())
    duration_s: float = 0.0


def recalign(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "recalign", "--threads", "1", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_to_end(args: list[str], cwd: Path) -> tuple[int, str]:
    process = recalign(args, cwd)
    _, err = process.communicate()
    return process.returncode, err


def manifest_status(directory: Path) -> str | None:
    try:
        return json.loads((directory / "manifest.json").read_text()).get("status")
    except (OSError, ValueError):
        return None


def parquet_differences(out: Path, reference: Path, names: list[str]) -> str:
    for name in names:
        ours, theirs = out / name, reference / name
        if not ours.is_file():
            return f"{name} missing"
        try:
            if not pl.read_parquet(ours).equals(pl.read_parquet(theirs)):
                return f"{name} differs"
        except Exception as error:  # an unreadable file is exactly what we look for
            return f"{name} unreadable: {type(error).__name__}: {error}"
    return ""


def weight_differences(out: Path, reference: Path) -> str:
    import torch
    from safetensors.torch import load_file

    files = sorted((reference / "model").glob("*.safetensors"))
    if not files:
        return "reference has no safetensors"
    for file in files:
        ours = out / "model" / file.name
        if not ours.is_file():
            return f"model/{file.name} missing"
        try:
            a, b = load_file(ours), load_file(file)
        except Exception as error:
            return f"model/{file.name} unreadable: {error}"
        if a.keys() != b.keys():
            return f"model/{file.name}: other tensors"
        for key in a:
            if not torch.allclose(a[key], b[key], atol=1e-5, rtol=1e-5):
                return f"model/{file.name}: {key} differs"
    steps = [
        json.loads(line)["step"]
        for line in (out / "train_log.jsonl").read_text().splitlines()
        if "loss" in json.loads(line)
    ]
    if steps != sorted(set(steps)):
        return f"train_log.jsonl repeats or reorders steps: {steps}"
    return ""


def run_differences(out: Path, reference: Path) -> str:
    for metrics in sorted(reference.rglob("metrics.json")):
        relative = metrics.relative_to(reference)
        ours = out / relative
        if not ours.is_file():
            return f"{relative} missing"
        a, b = json.loads(ours.read_text()), json.loads(metrics.read_text())
        if a.get("metrics") != b.get("metrics"):
            return f"{relative}: other metrics"
    if not (out / "report.md").is_file():
        return "report.md missing"
    return ""


def stages(work: Path) -> list[Stage]:
    data_args = ["--num-users", "120", "--num-items", "80", "--seed", "3"]
    ref_data, ref_samples = work / "ref-prepare", work / "ref-samples"
    train_yaml = work / "train.yaml"
    train_yaml.write_text(yaml.safe_dump(TRAINING))
    run_yaml = work / "run.yaml"
    run_yaml.write_text(yaml.safe_dump(RUN))

    def samples_args(out: Path) -> list[str]:
        return ["samples", "generate", str(ref_data), "--out", str(out),
                "--preset", "paper", "--max-history", "5"]  # fmt: skip

    def train_args(out: Path) -> list[str]:
        return ["train", "--data", str(ref_data), "--samples", str(ref_samples),
                "--model", "tiny-t5", "--out", str(out), "--config", str(train_yaml)]  # fmt: skip

    return [
        Stage(
            "prepare",
            lambda out: ["data", "prepare", "synthetic", "--out", str(out), *data_args],
            lambda out: ["data", "prepare", "synthetic", "--out", str(out), *data_args],
            lambda out: (out / "manifest.json").is_file(),  # written last: claims complete
            lambda out, ref: parquet_differences(out, ref, ["sequences.parquet", "items.parquet"]),
        ),
        Stage(
            "samples",
            samples_args,
            samples_args,
            lambda out: (out / "manifest.json").is_file(),
            lambda out, ref: parquet_differences(
                out, ref, ["train.parquet", "valid.parquet", "test.parquet"]
            ),
        ),
        Stage(
            "train",
            train_args,
            # What a requeued job (Slurm, a restarted pod) runs: always the same --resume.
            lambda out: [*train_args(out), "--resume"],
            lambda out: manifest_status(out) == "done",
            weight_differences,
        ),
        Stage(
            "run",
            lambda out: ["run", str(run_yaml), "--out", str(out)],
            lambda out: ["run", str(run_yaml), "--out", str(out)],
            lambda out: (out / "report.md").is_file(),
            run_differences,
        ),
    ]


def make_references(work: Path, chosen: list[Stage]) -> None:
    for stage in chosen:
        stage.reference = work / f"ref-{stage.name}"
        started = time.perf_counter()
        code, err = run_to_end(stage.command(stage.reference), work)
        stage.duration_s = time.perf_counter() - started
        if code != 0:
            raise SystemExit(f"reference {stage.name} failed ({code}):\n{err[-3000:]}")


def trial(stage: Stage, name: str, delay: float, out: Path) -> Trial:
    record = Trial(stage.name, name, round(delay, 2))
    process = recalign(stage.command(out), out.parent)
    try:
        process.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        process.send_signal(SIGNALS[name])
        _, err = process.communicate(timeout=300)
        record.killed_exit = process.returncode
        record.killed_said = (err.strip().splitlines() or [""])[-1][:200]
    else:
        process.communicate()
    if stage.claims_complete(out):
        record.claimed_complete_after_kill = True
        difference = stage.differs(out, stage.reference)
        record.silent_after_kill = bool(difference)
        record.detail = difference
    code, err = run_to_end(stage.resume(out), out.parent)
    record.rerun_exit = code
    if code != 0:
        record.loud_failure = True
        record.detail = (record.detail + " | rerun: " + err.strip().splitlines()[-1:][0])[:300]
    else:
        difference = stage.differs(out, stage.reference)
        record.silent_after_rerun = bool(difference)
        record.detail = (record.detail + " | " + difference).strip(" |")
    return record


def inject(trials: int, seed: int, only: list[str] | None, work: Path) -> dict:
    every = stages(work)
    chosen = [s for s in every if not only or s.name in only]
    needed = {"prepare", "samples"} | {s.name for s in chosen}  # the first two feed train
    make_references(work, [s for s in every if s.name in needed])
    rng = random.Random(seed)
    records = []
    for index in range(trials):
        stage = chosen[index % len(chosen)]
        name = ("kill", "term")[(index // len(chosen)) % 2]
        # Within the reference's own duration, clear of its start and end, so that most
        # signals land while the command works (a busy machine stretches it anyway).
        delay = rng.uniform(0.15, 0.85) * stage.duration_s
        out = work / "trials" / f"{index:03d}-{stage.name}-{name}" / "out"
        out.parent.mkdir(parents=True)
        records.append(trial(stage, name, delay, out))
        shutil.rmtree(out.parent, ignore_errors=True)
    silent = sum(r.silent_after_kill or r.silent_after_rerun for r in records)
    return {
        "trials": len(records),
        "interrupted": sum(r.killed_exit is not None for r in records),
        "silent_corruptions": silent,
        "loud_failures": sum(r.loud_failure for r in records),
        "reference_seconds": {s.name: round(s.duration_s, 1) for s in chosen},
        "by_stage": {
            s.name: {
                sig: sum(1 for r in records if r.stage == s.name and r.signal == sig)
                for sig in SIGNALS
            }
            | {
                "interrupted": sum(
                    1 for r in records if r.stage == s.name and r.killed_exit is not None
                )
            }
            for s in chosen
        },
        "load_average": os.getloadavg()[0],
        "records": [asdict(r) for r in records],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stages", help="comma-separated subset of prepare,samples,train,run")
    parser.add_argument("--keep", type=Path, help="work here and keep it (default: a temp dir)")
    args = parser.parse_args()
    only = args.stages.split(",") if args.stages else None
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        result = inject(args.trials, args.seed, only, args.keep)
    else:
        with tempfile.TemporaryDirectory(prefix="recalign-faults-") as tmp:
            result = inject(args.trials, args.seed, only, Path(tmp))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
