"""`recalign metrics ...`: merge sharded evaluations, recompute and show `metrics.json`.

The commands only read and write evaluation directories (`predictions.jsonl` +
`metrics.json`), so they start fast and work without the model stack.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

app = typer.Typer(
    help="Merge, recompute and show evaluation metrics.",
    no_args_is_help=True,
)


def _show(result: dict, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("metric", "value", "95% interval", title=title)
    for key, value in result["metrics"].items():
        low_high = result.get("intervals", {}).get(key)
        interval = f"[{low_high[0]:.4f}, {low_high[1]:.4f}]" if low_high else "–"
        table.add_row(key, f"{value:.4f}", interval)
    Console().print(table)


def _title(result: dict) -> str:
    return f"{result['model']} · {result['protocol']} · {result['split']} · {result['users']} users"


@app.command("merge")
def merge(
    shards: list[Path] = typer.Argument(..., help="Evaluation directories of the user shards."),
    out: Path = typer.Option(..., "--out", "-o", help="Directory for the merged evaluation."),
    as_json: bool = typer.Option(False, "--json", help="Print metrics.json instead of a table."),
) -> None:
    """Merge user-sharded evaluations (`--shard I --num-shards N`) and recompute the metrics."""
    from recalign.evaluation.outputs import merge_evaluations

    result = merge_evaluations(shards, out)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        _show(result, _title(result))


@app.command("recompute")
def recompute(
    directory: Path = typer.Argument(..., help="An evaluation directory (predictions.jsonl)."),
    protocol: str | None = typer.Option(None, "--protocol", help="Default: from metrics.json."),
    split: str | None = typer.Option(None, "--split", help="Default: from metrics.json."),
    model: str | None = typer.Option(None, "--model", help="Default: from metrics.json."),
    n_boot: int | None = typer.Option(None, "--n-boot", help="Bootstrap resamples."),
    seed: int | None = typer.Option(None, "--seed", help="Bootstrap seed."),
    write: bool = typer.Option(False, "--write", help="Overwrite metrics.json with the result."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
) -> None:
    """Recompute the metrics from predictions.jsonl; exit 1 if they differ from metrics.json."""
    from recalign.constants import METRICS_FILE
    from recalign.evaluation.outputs import metrics_from_predictions, read_metrics, rewrite_metrics

    result = metrics_from_predictions(
        directory, protocol=protocol, split=split, model=model, n_boot=n_boot, seed=seed
    )
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        _show(result, _title(result))
    if write:
        rewrite_metrics(directory, result)  # committed again: the manifest records it
        return
    stored = read_metrics(directory) if (directory / METRICS_FILE).is_file() else None
    if stored is not None and stored != result:
        changed = sorted(
            k for k in result["metrics"] if result["metrics"][k] != stored["metrics"].get(k)
        )
        typer.secho(
            f"metrics.json differs from the predictions ({', '.join(changed) or 'intervals/options'})",
            err=True,
            fg=typer.colors.YELLOW,
        )
        raise typer.Exit(1)


@app.command("show")
def show(
    directories: list[Path] = typer.Argument(..., help="Evaluation directories."),
) -> None:
    """Print the metrics and intervals of one or more evaluations."""
    from recalign.evaluation.outputs import read_metrics

    for directory in directories:
        result = read_metrics(directory)
        _show(result, _title(result))
