"""`recalign samples ...`: templates, generation, inspection and export of training samples."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from recalign.cli.options import field_option, override_option
from recalign.pipeline.config import SamplesSection
from recalign.samples.mixture import DEFAULT_PRESET, PRESETS, MixtureConfig

if TYPE_CHECKING:
    from recalign.artifacts import SamplesManifest

app = typer.Typer(
    help="Generate training samples (recommendation + auxiliary tasks).", no_args_is_help=True
)


@app.command("templates")
def templates_command(
    task: str | None = typer.Option(None, "--task", help="Only this task's templates."),
    validate: list[Path] = typer.Option(
        [], "--validate", help="Check a template file (repeatable); exits 2 when invalid."
    ),
    show: bool = typer.Option(False, "--show", help="Print the template strings too."),
) -> None:
    """List the prompt templates, or validate your own template files."""
    from recalign.samples.tasks import load_template_file, load_templates

    if validate:
        for path in validate:
            templates = load_template_file(path)
            typer.echo(f"{path}: ok ({len(templates)} templates for task {templates[0].task!r})")
        return
    for template in load_templates().all():
        if task is not None and template.task != task:
            continue
        typer.echo(f"{template.task:10s} {template.id:22s} v{template.version}  {template.split}")
        if show:
            typer.echo(f"    input:  {template.input}")
            typer.echo(f"    target: {template.target}")


@app.command("generate")
def generate_command(
    data_dir: Path = typer.Argument(..., help="A prepared dataset directory."),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory."),
    preset: str = typer.Option(DEFAULT_PRESET, "--preset", help=", ".join(PRESETS) + "."),
    config: Path | None = typer.Option(None, "--config", help="Mixture config (YAML)."),
    seed: int = typer.Option(0, "--seed"),
    shard: int | None = typer.Option(None, "--shard", help="This shard's index (0-based)."),
    num_shards: int | None = typer.Option(None, "--num-shards"),
    family: str = typer.Option("seq2seq", "--family", help="seq2seq (T5 sentinels) or causal."),
    item_repr: str | None = override_option(
        MixtureConfig,
        "item_repr",
        "--item-repr",
        help="How prompts show an item: title, id, id+title, semantic or semantic+title "
        "(semantic ids: docs/models.md).",
    ),
    max_history: int | None = override_option(MixtureConfig, "max_history", "--max-history"),
    templates: list[Path] = typer.Option(
        [], "--templates", help="Your template file(s): replace the task's shipped templates."
    ),
    workers: int = field_option(
        SamplesSection,
        "workers",
        "--workers",
        "-j",
        help=(
            "Processes generating blocks of users in parallel (the same files as one). "
            "Worth it beyond 2 cores: one process already overlaps generating and writing."
        ),
    ),
) -> None:
    """Write DIR/{train,valid,test}.parquet and DIR/manifest.json."""
    import numpy as np
    from rich.progress import Progress

    from recalign.data.store import load_prepared
    from recalign.samples.generate import generate_samples
    from recalign.sharding import shard_users

    dataset = load_prepared(data_dir)
    users = len(shard_users(np.arange(dataset.num_users), shard, num_shards))
    with Progress(transient=True) as progress:
        bar = progress.add_task("users", total=users)
        manifest = generate_samples(
            dataset if workers == 1 else data_dir,
            out,
            preset=preset,
            seed=seed,
            config=config,
            shard=shard,
            num_shards=num_shards,
            family=family,
            item_repr=item_repr,
            max_history=max_history,
            templates=templates or None,
            on_progress=lambda n: progress.advance(bar, n),
            workers=workers,
        )
    _print_counts(manifest, out)


def _print_counts(manifest: SamplesManifest, out: Path) -> None:
    for name, reason in manifest.skipped.items():
        typer.secho(f"skipped {name}: {reason}", fg=typer.colors.YELLOW)
    for split, counts in manifest.counts.items():
        detail = ", ".join(f"{task} {n:,}" for task, n in counts.items())
        typer.echo(f"{split:5s} {manifest.totals[split]:>10,}  ({detail})")
    typer.echo(f"wrote {out}")


@app.command("merge")
def merge_command(
    shards: list[Path] = typer.Argument(
        ..., help="The shard directories (--shard I --num-shards N)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory."),
) -> None:
    """Merge the user shards of one generation into one samples directory."""
    from recalign.samples.merge import merge_samples

    _print_counts(merge_samples(shards, out), out)


@app.command("show")
def show_command(
    samples_dir: Path = typer.Argument(..., help="A samples directory."),
    task: str | None = typer.Option(None, "--task"),
    split: str = typer.Option("train", "--split"),
    n: int = typer.Option(3, "-n", help="How many examples."),
) -> None:
    """Print a few samples."""
    from recalign.samples.export import read_samples

    frame = read_samples(samples_dir, split, task).head(n)
    if frame.height == 0:
        typer.echo(f"no {split} samples" + (f" for task {task!r}" if task else ""))
        return
    for row in frame.iter_rows(named=True):
        typer.secho(f"[{row['task']} / {row['template']} / user {row['user_id']}]", bold=True)
        typer.echo(f"input:  {row['input']}")
        typer.echo(f"target: {row['target']}")
        if row.get("candidates") is not None:
            typer.echo(f"candidates: {row['candidates']}")
        typer.echo("")


@app.command("export")
def export_command(
    samples_dir: Path = typer.Argument(..., help="A samples directory."),
    out: Path = typer.Option(..., "--out", "-o"),
    fmt: str = typer.Option("jsonl", "--format", help="jsonl or hf (a datasets DatasetDict)."),
) -> None:
    """Export the splits to JSON Lines or a Hugging Face dataset."""
    from recalign.samples.export import export_samples

    written = export_samples(samples_dir, out, fmt)
    typer.echo("wrote " + ", ".join(map(str, written)))


@app.command("inspect")
def inspect_command(
    samples_dir: Path = typer.Argument(..., help="A samples directory."),
    model: str = typer.Option(
        ..., "--model", "-m", help="A run directory, a model directory or a hub name."
    ),
    max_source_length: int = typer.Option(
        ..., "--max-source-length", min=1, help="The prompt budget in the model's tokens."
    ),
    split: list[str] = typer.Option(
        [], "--split", help="Only these splits (repeatable; default: all)."
    ),
    max_samples: int | None = typer.Option(
        None, "--max-samples", min=1, help="A seeded subset of each split (large splits)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """How the prompts fit a model's budget: shortened prompts, items dropped, tokens cut."""
    import json

    from rich.table import Table

    from recalign.cli.console import console
    from recalign.models.loading import load_tokenizer
    from recalign.samples.inspect import inspect_fit

    tokenizer, family = load_tokenizer(model)
    report = inspect_fit(
        samples_dir,
        tokenizer,
        family,
        max_source_length,
        splits=tuple(split) if split else ("train", "valid", "test"),
        max_samples=max_samples,
    )
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    table = Table(
        "split",
        "task",
        "prompts",
        "shortened",
        "items dropped (mean / max)",
        "tokens removed (mean / max)",
        "item texts cut",
        "cannot fit (longest)",
        title=f"{samples_dir} with {model} ({family}), max_source_length {max_source_length}",
    )
    unfit = 0
    for name, tasks in report["splits"].items():
        for task, row in tasks.items():
            shortened = row["shortened"]
            unfit += row["cannot_fit"]
            table.add_row(
                name,
                task,
                f"{row['prompts']:,}",
                f"{shortened:,} ({shortened / max(1, row['prompts']):.1%})",
                f"{_mean(row['items_dropped'], shortened)} / {row['items_dropped_max']}",
                f"{_mean(row['tokens_removed'], shortened)} / {row['tokens_removed_max']}",
                f"{row['item_texts_shortened']:,}",
                f"{row['cannot_fit']:,}"
                + (f" ({row['longest_unfit']})" if row["cannot_fit"] else ""),
            )
    console.print(table)
    if not report["has_bounds"]:
        typer.secho(
            "these samples carry no history bounds (generated before prompts were fitted): "
            "over-budget prompts are cut from one side, which can cut the instruction or the "
            "chat frame. Regenerate them with `recalign samples generate`.",
            fg=typer.colors.YELLOW,
        )
    if unfit:
        longest = max(
            row["longest_unfit"] for tasks in report["splits"].values() for row in tasks.values()
        )
        typer.secho(
            f"{unfit:,} prompt(s) do not fit even without their history: the instruction, "
            "candidates and chat frame alone are over budget, so they stay whole (over "
            f"budget). Raise --max-source-length / max_source_length to at least {longest}, "
            "or shorten what every prompt carries: fewer ranking candidates "
            "(tasks.ranking.num_candidates) or shorter item texts (data prepare --max-words).",
            fg=typer.colors.YELLOW,
        )


def _mean(total: int, count: int) -> str:
    return f"{total / count:.1f}" if count else "0"
