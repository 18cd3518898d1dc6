"""`recalign data ...`: list, prepare and describe datasets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from recalign.constants import MANIFEST_FILE, STATS_FILE
from recalign.errors import ConfigError

app = typer.Typer(help="Prepare datasets and inspect them.", no_args_is_help=True)


def _console():
    from rich.console import Console

    # soft_wrap: paths and counts stay on one line whatever the terminal width.
    return Console(soft_wrap=True)


@app.command("list")
def list_datasets() -> None:
    """The dataset names recalign knows, and where each comes from."""
    from recalign.data.registry import DATASETS

    # Plain lines rather than a table: URLs must stay whole and copyable at any width.
    width = max(len(name) for name in DATASETS)
    for spec in DATASETS.values():
        typer.echo(f"{spec.name:<{width}}  {spec.description}")
        typer.echo(f"{'':<{width}}  source: {spec.origin}")


def _synthetic_items(value: str | None) -> int:
    if value is None:
        return 500
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"--items for 'synthetic' is a number of items, got {value!r}") from None


@app.command("prepare")
def prepare(
    name: str = typer.Argument(..., help="Dataset name (see `recalign data list`)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory."),
    source: Path | None = typer.Option(
        None, "--source", help="Folder with the source files; without it, download into the cache."
    ),
    users: int = typer.Option(2000, help="synthetic: number of users."),
    items: str | None = typer.Option(
        None,
        "--items",
        help="synthetic: number of items (default 500); custom: the items file (CSV/Parquet).",
    ),
    seed: int = typer.Option(0, help="synthetic: random seed."),
    interactions: Path | None = typer.Option(
        None, "--interactions", help="custom: the interactions file (CSV/Parquet)."
    ),
    user_col: str = typer.Option("user_id", help="custom: user column."),
    item_col: str = typer.Option("item_id", help="custom: item column."),
    timestamp_col: str | None = typer.Option(None, help="custom: timestamp column (optional)."),
    rating_col: str | None = typer.Option(None, help="custom: rating column (optional)."),
    title_col: str = typer.Option("title", help="custom: title column of the items file."),
    short_text_col: str | None = typer.Option(
        None, help="custom: fallback text column of the items file."
    ),
    domain: str | None = typer.Option(
        None,
        "--domain",
        help=(
            "custom: what the items are, for the prompts' words: items (default), products, "
            "movies, books, music, or item=recipe,verb=cook,verb_past=cooked."
        ),
    ),
    kcore: int | None = typer.Option(
        None, help="k-core filter (default: 5 for raw Amazon reviews, none otherwise)."
    ),
    min_length: int = typer.Option(3, help="Exclude (and report) users with fewer interactions."),
    max_words: int = typer.Option(24, help="Word budget of an item text."),
) -> None:
    """Prepare dataset NAME into --out (sequences, items, stats, manifest)."""
    from recalign.data.prepare import prepare_dataset

    if domain is not None and name != "custom":
        raise ConfigError("--domain is for 'custom' (the other sources know their items)")
    options: dict[str, Any] = {}
    if name == "synthetic":
        options = {"users": users, "items": _synthetic_items(items), "seed": seed}
    else:
        options = {"min_length": min_length, "max_words": max_words, "kcore": kcore}
        if source is None and name != "custom":
            options["progress"] = True  # a download: show pooch's progress bar
        if name == "custom":
            from recalign.data.readers.custom import CustomColumns

            options.update(
                interactions=interactions,
                items=items,
                columns=CustomColumns(
                    user=user_col,
                    item=item_col,
                    timestamp=timestamp_col,
                    rating=rating_col,
                    title=title_col,
                    short_text=short_text_col,
                ),
                domain=domain,
            )
        elif interactions is not None or items is not None:
            raise ConfigError(
                "--interactions/--items are for 'custom' (or --items for 'synthetic')"
            )
    prepare_dataset(name, out, source, **options)
    # Read what was written rather than recomputing: the synthetic shop may be large.
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    stats = json.loads((out / STATS_FILE).read_text())
    report = manifest.get("report", {})
    console = _console()
    console.print(
        f"[bold]{name}[/bold] -> {out}: {stats['users']:,} users, {stats['items']:,} items, "
        f"{stats['interactions']:,} interactions"
    )
    excluded = report.get("users_excluded_short", 0)
    if excluded:
        console.print(
            f"[yellow]excluded {excluded:,} user(s) with fewer than {min_length} interactions "
            f"({report.get('interactions_excluded_short', 0):,} interactions)[/yellow]"
        )
    if report.get("kcore"):
        kept = report["kcore"]
        console.print(
            f"{kept['k']}-core: kept {kept['interactions_kept']:,} of "
            f"{report.get('interactions_read', 0):,} interactions ({kept['passes']} passes)"
        )
    console.print(
        f"item texts: {stats['text_fallbacks']:,} fallback(s), "
        f"{stats['text_disambiguated']:,} disambiguated"
    )


def _flat(prefix: str, value: Any) -> list[tuple[str, str]]:
    if isinstance(value, dict):
        rows: list[tuple[str, str]] = []
        for key, inner in value.items():
            rows.extend(_flat(f"{prefix}.{key}" if prefix else str(key), inner))
        return rows
    if isinstance(value, float):
        return [(prefix, f"{value:.6g}")]
    if isinstance(value, int) and not isinstance(value, bool):
        return [(prefix, f"{value:,}")]
    return [(prefix, str(value))]


@app.command("stats")
def stats(
    directory: Path = typer.Argument(..., help="A prepared-dataset directory."),
    as_json: bool = typer.Option(False, "--json", help="Print the stats dict as JSON."),
) -> None:
    """Users, items, interactions, density, sequence lengths, text fallbacks, ..."""
    from recalign.data.store import load_prepared

    dataset = load_prepared(directory)
    values = dataset.stats()
    if as_json:
        typer.echo(json.dumps(values, indent=2))
        return
    from rich.table import Table

    table = Table(title=f"{dataset.name} ({directory})")
    table.add_column("statistic")
    table.add_column("value", justify="right")
    for key, value in _flat("", values):
        table.add_row(key, value)
    _console().print(table)
