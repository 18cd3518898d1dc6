"""`recalign samples ...`: templates, generation, inspection and export of training samples."""

from __future__ import annotations

from pathlib import Path

import typer

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
    from recalign.samples.templates import load_template_file, load_templates

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
    preset: str = typer.Option(
        "paper", "--preset", help="paper, rec-only, rec+mim, rec+bpr, rec+mlm."
    ),
    config: Path | None = typer.Option(None, "--config", help="Mixture config (YAML)."),
    seed: int = typer.Option(0, "--seed"),
    shard: int | None = typer.Option(None, "--shard", help="This shard's index (0-based)."),
    num_shards: int | None = typer.Option(None, "--num-shards"),
    family: str = typer.Option("seq2seq", "--family", help="seq2seq (T5 sentinels) or causal."),
    item_repr: str | None = typer.Option(None, "--item-repr", help="title, id or id+title."),
    templates: list[Path] = typer.Option(
        [], "--templates", help="Your template file(s): replace the task's shipped templates."
    ),
    workers: int = typer.Option(
        1,
        "--workers",
        "-j",
        min=1,
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
    from recalign.samples.generate import generate_samples, shard_users

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
            templates=templates or None,
            on_progress=lambda n: progress.advance(bar, n),
            workers=workers,
        )
    _print_counts(manifest, out)


def _print_counts(manifest: dict, out: Path) -> None:
    for name, reason in manifest["skipped"].items():
        typer.secho(f"skipped {name}: {reason}", fg=typer.colors.YELLOW)
    for split, counts in manifest["counts"].items():
        detail = ", ".join(f"{task} {n:,}" for task, n in counts.items())
        typer.echo(f"{split:5s} {manifest['totals'][split]:>10,}  ({detail})")
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
