"""Training throughput of tiny-t5 on Beauty samples: length-grouped vs random batches.

Prepares Amazon Beauty from the shared data (or `--data DIR`, a prepared dataset),
generates the `paper` mixture once, then trains tiny-t5 for `--steps` steps with
`batching: length_grouped` and with `batching: random` (the baseline), alternating,
`--repeats` times each. Every run is a fresh child process, so its peak RSS is its own.

Throughput is measured over the training steps only (from the end of step `--warmup`
to the end of the last step; tokenizer training, tokenisation, evaluation and
checkpoint writing excluded):

- `samples_per_s`;
- `input_tokens_per_s`: non-padding prompt tokens (the Trainer's own counter);
- `tokens_per_s`: non-padding prompt + answer tokens, from the batches the run's
  sampler produced (replayed with the same seed);
- `padding_fraction`: share of padded positions in those batches.

Prints one JSON object with the medians per mode and the ratios length_grouped/random.

    python bench/bench_train.py --steps 60 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODES = ("length_grouped", "random")


def _shared_data() -> Path:
    env = os.environ.get("RECALIGN_DATA_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


def prepare(work: Path, data: Path | None, preset: str) -> tuple[Path, Path]:
    """The prepared dataset and its samples directory (made once, reused)."""
    from recalign.samples import generate_samples

    if data is None:
        data = work / "beauty"
        if not (data / "manifest.json").is_file():
            from recalign.data.prepare import prepare_dataset

            source = _shared_data() / "amazon2014" / "beauty"
            prepare_dataset("amazon2014-beauty", data, source=source)
    samples = work / f"samples-{preset}"
    if not (samples / "manifest.json").is_file():
        generate_samples(data, samples, preset=preset, family="seq2seq")
    return data, samples


def _replay_batches(tokenizer, samples: Path, config, steps: int) -> dict[str, float]:
    """Real and padded tokens in the first `steps` batches the run's sampler yields."""
    import torch

    from recalign.training.data import Lengths, encode_batch
    from recalign.training.sampler import LengthGroupedSampler, ShuffleSampler
    from recalign.training.stream import build_text_set, choose_rows, open_split

    split = open_split(samples, "train", tasks=config.tasks)
    rows = choose_rows(split.rows, config.max_train_samples, config.seed)
    lengths = Lengths(config.max_source_length, config.max_target_length, config.truncation_side)
    with tempfile.TemporaryDirectory() as tmp:
        texts = build_text_set(
            split,
            rows,
            Path(tmp) / "train.arrow",
            tokenizer=tokenizer,
            family="seq2seq",
            lengths=lengths,
            source=config.length_source,
        )
        if config.batching == "length_grouped":
            batch = config.batch_size * config.grad_accum
            sampler = LengthGroupedSampler(texts.lengths, batch, config.seed)
        else:
            sampler = ShuffleSampler(texts.lengths, config.seed)
        order = list(sampler)[: steps * config.batch_size]
        chosen = texts.dataset[order]
    encoded = encode_batch(tokenizer, "seq2seq", chosen["input"], chosen["target"], lengths)
    inputs = [len(x) for x in encoded.input_ids]
    labels = [len(x) for x in encoded.labels]
    multiple = config.pad_to_multiple_of or (8 if torch.cuda.is_available() else 1)

    def width(values: list[int]) -> int:
        return -(-max(values) // multiple) * multiple

    real = padded = 0
    for start in range(0, len(order), config.batch_size):
        a, b = inputs[start : start + config.batch_size], labels[start : start + config.batch_size]
        real += sum(a) + sum(b)
        padded += len(a) * (width(a) + width(b))
    return {"real_tokens": real, "padded_tokens": padded}


def worker(args: argparse.Namespace) -> dict:
    import torch
    from transformers import TrainerCallback

    if args.threads:
        # On a shared CPU one thread holds steady while two fall to a third of their
        # speed when another process takes a core (docs/MACHINE.md).
        torch.set_num_threads(args.threads)

    from recalign.training.config import make_config
    from recalign.training.run import train

    class Timer(TrainerCallback):
        def __init__(self) -> None:
            self.marks: dict[int, tuple[float, int]] = {}

        def on_step_end(self, args_, state, control, **kwargs):
            self.marks[state.global_step] = (time.perf_counter(), state.num_input_tokens_seen)

    config = make_config(
        {
            "max_steps": args.steps,
            "batch_size": args.batch_size,
            "batching": args.mode,
            "max_train_samples": args.train_samples,
            "max_eval_samples": 64,
            "eval_steps": args.steps,
            "logging_steps": args.steps,
            "max_source_length": args.max_source_length,
            "max_target_length": 32,
            "warmup_ratio": 0.0,
            "precision": "auto",
            "pad_to_multiple_of": args.pad_multiple or None,
        }
    )
    timer = Timer()
    with tempfile.TemporaryDirectory() as tmp:
        result = train(
            args.data,
            args.samples,
            "tiny-t5",
            Path(tmp) / "run",
            config=config,
            callbacks=[timer],
            progress=False,
        )
    (t0, tok0), (t1, tok1) = timer.marks[args.warmup], timer.marks[args.steps]
    seconds = t1 - t0
    timed_steps = args.steps - args.warmup
    replay = _replay_batches(result.tokenizer, Path(args.samples), config, args.steps)
    real_per_step = replay["real_tokens"] / args.steps
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    return {
        "mode": args.mode,
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "threads": torch.get_num_threads(),
        "seconds": seconds,
        "samples_per_s": timed_steps * args.batch_size / seconds,
        "input_tokens_per_s": (tok1 - tok0) / seconds,
        "tokens_per_s": timed_steps * real_per_step / seconds,
        "padding_fraction": 1 - replay["real_tokens"] / replay["padded_tokens"],
        "peak_rss_mb": peak_kb / 1024,
        "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20
        if torch.cuda.is_available()
        else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--work", type=Path, default=Path(tempfile.gettempdir()) / "recalign-bench-train"
    )
    parser.add_argument(
        "--data", type=Path, default=None, help="A prepared dataset (default Beauty)."
    )
    parser.add_argument("--preset", default="paper")
    # The length-grouped sampler sorts megabatches of 50 batches, longest first: time
    # whole megabatches (steps = warmup + a multiple of 50) or it measures only long ones.
    parser.add_argument("--steps", type=int, default=51)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--train-samples", type=int, default=20_000)
    parser.add_argument("--max-source-length", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pad-multiple", type=int, default=0, help="0: the default")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: default)")
    parser.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--samples", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:  # child process: one run
        print(json.dumps(worker(args)))
        return

    import logging

    logging.basicConfig(level=logging.WARNING)
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    data, samples = prepare(args.work, args.data, args.preset)
    prepare_seconds = time.perf_counter() - started
    runs: dict[str, list[dict]] = {mode: [] for mode in MODES}
    for _ in range(args.repeats):
        for mode in MODES:
            command = [
                sys.executable,
                __file__,
                "--mode",
                mode,
                "--data",
                str(data),
                "--samples",
                str(samples),
                "--steps",
                str(args.steps),
                "--warmup",
                str(args.warmup),
                "--batch-size",
                str(args.batch_size),
                "--train-samples",
                str(args.train_samples),
                "--max-source-length",
                str(args.max_source_length),
                "--threads",
                str(args.threads),
                "--pad-multiple",
                str(args.pad_multiple),
            ]
            out = subprocess.run(command, capture_output=True, text=True, check=False)
            if out.returncode:
                sys.exit(f"{mode} run failed:\n{out.stderr[-4000:]}")
            runs[mode].append(json.loads(out.stdout.strip().splitlines()[-1]))

    def median(mode: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[mode])

    keys = (
        "samples_per_s",
        "input_tokens_per_s",
        "tokens_per_s",
        "padding_fraction",
        "peak_rss_mb",
    )
    summary = {mode: {k: round(median(mode, k), 3) for k in keys} for mode in MODES}
    for mode in MODES:
        if runs[mode][0]["peak_gpu_mb"] is not None:
            summary[mode]["peak_gpu_mb"] = round(median(mode, "peak_gpu_mb"), 1)
    report = {
        "bench": "train",
        "model": "tiny-t5 (d_model 128, 2+2 layers, trained 8k tokenizer)",
        "dataset": str(data),
        "preset": args.preset,
        "steps": args.steps,
        "timed_steps": args.steps - args.warmup,
        "batch_size": args.batch_size,
        "train_samples": args.train_samples,
        "max_source_length": args.max_source_length,
        "repeats": args.repeats,
        "device": runs["random"][0]["device"],
        "threads": runs["random"][0]["threads"],
        "load_average": os.getloadavg(),
        "prepare_seconds": round(prepare_seconds, 1),
        "median": summary,
        "ratio_length_grouped_over_random": {
            k: round(median("length_grouped", k) / median("random", k), 3)
            for k in ("samples_per_s", "tokens_per_s")
        },
        "runs": runs,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
