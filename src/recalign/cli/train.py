"""`recalign train` and `recalign models import`: thin wrappers over the Python API."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import typer

from recalign.cli.options import field_option, override_option
from recalign.cli.signals import INTERRUPTED_EXIT
from recalign.pipeline.config import ModelSection
from recalign.training.config import LoraConfig, TrainConfig

models_app = typer.Typer(help="Import and inspect models.", no_args_is_help=True)


def train(
    data: Path = typer.Option(..., "--data", help="Prepared dataset directory."),
    samples: Path = typer.Option(..., "--samples", help="Samples directory made from --data."),
    model: str = field_option(
        ModelSection,
        "spec",
        "--model",
        help="tiny-t5, tiny-causal, a local model dir, a .gguf or a hub name.",
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory to write."),
    config: Path | None = typer.Option(None, "--config", help="YAML training config."),
    max_steps: int | None = override_option(TrainConfig, "max_steps", "--max-steps"),
    epochs: float | None = override_option(TrainConfig, "epochs", "--epochs"),
    lora: bool | None = override_option(LoraConfig, "enabled", "--lora/--full"),
    max_train_samples: int | None = override_option(
        TrainConfig, "max_train_samples", "--max-train-samples"
    ),
    max_eval_samples: int | None = override_option(
        TrainConfig, "max_eval_samples", "--max-eval-samples", min=1
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out."),
    tokenizer: Path | None = typer.Option(
        None, "--tokenizer", help="Tokenizer dir for tiny presets (default: train one)."
    ),
    num_processes: int = typer.Option(
        1,
        "--num-processes",
        min=1,
        help="Processes (GPUs) on this machine, through accelerate launch.",
    ),
) -> None:
    """Fine-tune MODEL on SAMPLES and write RUN_DIR (model, checkpoints, logs, manifest)."""
    if num_processes > 1:
        _relaunch(num_processes)
        return
    from recalign.threads import configure_threads
    from recalign.training.run import train as run_train

    configure_threads()
    result = run_train(
        data,
        samples,
        model,
        out,
        config_path=config,
        max_steps=max_steps,
        epochs=epochs,
        lora=lora,
        max_train_samples=max_train_samples,
        max_eval_samples=max_eval_samples,
        resume=resume,
        tokenizer_path=tokenizer,
    )
    if result.interrupted:
        typer.secho(
            f"interrupted ({result.stop_signal}) at step {result.steps}; checkpoint saved in "
            f"{out}/checkpoints. Continue with the same command and --resume "
            f"(recalign train ... --out {out} --resume)",
            err=True,
            fg=typer.colors.YELLOW,
        )
        raise typer.Exit(INTERRUPTED_EXIT)
    best = (
        f"best step {result.best_step} (eval loss {result.best_eval_loss:.4f})"
        if (result.best_eval_loss is not None)
        else "no evaluation"
    )
    typer.echo(f"trained {result.steps} steps in {result.train_seconds:.0f}s; {best}; run: {out}")


def launch_command(argv: list[str], num_processes: int) -> list[str]:
    """`accelerate launch -m recalign train` with this command's other options: each
    process runs the same `recalign train`, without --num-processes."""
    # `recalign [ROOT OPTIONS] train [OPTIONS]`: the root's options (--threads, -v) too.
    at = argv.index("train") if "train" in argv else -1
    root, args = list(argv[: max(at, 0)]), list(argv[at + 1 :])
    cleaned: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg == "--num-processes":
            skip = True
        elif not arg.startswith("--num-processes="):
            cleaned.append(arg)
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--num_processes",
        str(num_processes),
        # accelerate's multi-process launcher (torchrun); on a CPU-only machine the
        # processes use gloo.
        "--multi_gpu",
        "-m",
        "recalign",
        *root,
        "train",
        *cleaned,
    ]


def _relaunch(num_processes: int) -> None:
    """Re-run this command under `accelerate launch` with N processes (one per GPU)."""
    command = launch_command(sys.argv[1:], num_processes)
    typer.echo("launching: " + " ".join(command), err=True)
    raise typer.Exit(subprocess.call(command))


@models_app.callback()
def _models() -> None:
    """Import and inspect models."""


@models_app.command("import")
def import_model(
    path: Path = typer.Argument(..., help="A .gguf file."),
    out: Path = typer.Option(..., "--out", "-o", help="Model directory to write."),
    dtype: str = typer.Option("float32", help="Weight dtype: float32, bfloat16 or float16."),
) -> None:
    """Convert a GGUF file into a model directory usable as `--model DIR`."""
    from recalign.models.gguf import import_gguf

    import_gguf(path, out, dtype=dtype)
    typer.echo(f"imported {path.name} into {out}; use it with --model {out}")
