"""`recalign data ...`: list, prepare and describe datasets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

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


def _refuse_misplaced(name: str, synthetic: dict[str, Any], files: dict[str, Any]) -> None:
    """Options that belong to another kind of dataset: say which one they are for."""
    sizes = "/".join(flag for flag, value in synthetic.items() if value is not None)
    paths = "/".join(flag for flag, value in files.items() if value is not None)
    if name == "synthetic" and paths:
        raise ConfigError(
            f"{paths} cannot be used with 'synthetic' (--interactions and --items name the "
            "files of a 'custom' dataset); size the synthetic shop with --num-users N and "
            "--num-items N"
        )
    if name != "synthetic" and sizes:
        raise ConfigError(
            f"{sizes} cannot be used with {name!r}: --num-users, --num-items and --seed size "
            "the 'synthetic' shop"
        )
    if name not in ("synthetic", "custom") and paths:
        raise ConfigError(
            f"{paths} cannot be used with {name!r}: --interactions and --items name the files "
            f"of a 'custom' dataset; {name!r} reads --source FOLDER (or downloads)"
        )


@app.command("prepare")
def prepare(
    name: str = typer.Argument(
        ..., metavar="NAME", help="Dataset name (see `recalign data list`)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory."),
    source: Path | None = typer.Option(
        None, "--source", help="Folder with the source files; without it, download into the cache."
    ),
    num_users: int | None = typer.Option(
        None, "--num-users", min=1, help="synthetic: number of users (default 2000)."
    ),
    num_items: int | None = typer.Option(
        None, "--num-items", min=1, help="synthetic: number of items (default 500)."
    ),
    seed: int | None = typer.Option(None, "--seed", help="synthetic: random seed (default 0)."),
    interactions: Path | None = typer.Option(
        None, "--interactions", help="custom: the interactions file (CSV/Parquet)."
    ),
    items: Path | None = typer.Option(
        None, "--items", help="custom: the items file (CSV/Parquet), optional."
    ),
    user_col: str = typer.Option("user_id", help="custom: user column."),
    item_col: str = typer.Option(
        "item_id", help="custom: item column (of both the interactions and the items file)."
    ),
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
    max_chars: int = typer.Option(
        300, help="Character budget of an item text (cut at a word boundary)."
    ),
    cold_items: float = typer.Option(
        0.0,
        "--cold-items",
        min=0.0,
        max=0.99,
        help="Hold out this seeded fraction of items as cold-start items: their "
        "interactions are removed except as a user's test target (docs/pipeline.md).",
    ),
    cold_seed: int = typer.Option(0, "--cold-seed", help="Seed of the cold item draw."),
    rating_scale: str | None = typer.Option(
        None,
        help="custom: LOW,HIGH range ratings must lie in, e.g. 1,5 (default: any finite, "
        "non-negative rating).",
    ),
) -> None:
    """Prepare dataset NAME into --out (sequences, items, stats, manifest).

    synthetic: the built-in demo shop, sized by --num-users and --num-items (and --seed).

    Downloadable datasets (see `recalign data list`): with --source FOLDER, read the files
    from there; without it, download them into the cache.

    custom: your own files, CSV (.csv; .tsv for tabs) or Parquet.

    \b
    --interactions FILE  one row per interaction (required), with the columns
                           user (--user-col, default user_id)
                           item (--item-col, default item_id)
                           timestamp (--timestamp-col, optional; integers; orders each
                             user's rows, else they keep file order)
                           rating (--rating-col, optional; numbers)
    --items FILE         one row per item (optional), with the columns
                           item (the same --item-col)
                           title (--title-col, default title), or a fallback text
                             column (--short-text-col)
                         other columns are kept as item metadata. An item without a
                         title or text is named "item <its id>".
    """
    from recalign.data.prepare import prepare_dataset

    synthetic_given = {"--num-users": num_users, "--num-items": num_items, "--seed": seed}
    files_given = {"--interactions": interactions, "--items": items}
    _refuse_misplaced(name, synthetic_given, files_given)
    if domain is not None and name != "custom":
        raise ConfigError("--domain is for 'custom' (the other sources know their items)")
    options: dict[str, Any]
    if name == "synthetic":
        sizes = {"users": num_users, "items": num_items, "seed": seed}
        options = {key: value for key, value in sizes.items() if value is not None}
    else:
        options = {
            "min_length": min_length,
            "max_words": max_words,
            "max_chars": max_chars,
            "kcore": kcore,
        }
        if rating_scale is not None:
            options["rating_scale"] = rating_scale  # refused by prepare unless 'custom'
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
    if cold_items:
        options.update(cold_items=cold_items, cold_seed=cold_seed)
    from recalign.artifacts import DatasetDir

    prepare_dataset(name, out, source, **options)
    # Read what was written rather than recomputing: the synthetic shop may be large.
    manifest = DatasetDir.open(out).manifest
    stats, report = manifest.stats, manifest.report
    console = _console()
    console.print(
        f"[bold]{name}[/bold] -> {out}: {stats['users']:,} users, {stats['items']:,} items, "
        f"{stats['interactions']:,} interactions"
    )
    from rich.text import Text

    from recalign.data.dropped import report_lines

    # What was dropped, cut or replaced, and why (also in manifest.json's `report`).
    for line, notable in report_lines(report):
        console.print(Text(line, style="yellow" if notable else ""))
    if report.get("cold"):
        cold = report["cold"]
        console.print(
            f"cold items: {cold['items']:,} held out of training ({cold['interactions_removed']:,} "
            f"interactions removed, {cold['users_dropped_short']:,} user(s) left too short); "
            f"test cases: {cold['cold_test_cases']:,} cold, {cold['warm_test_cases']:,} warm"
        )
    if "items_text_fallback" not in report:  # the synthetic shop writes no prepare report
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
    directory: Path = typer.Argument(
        ..., metavar="DIRECTORY", help="A prepared-dataset directory."
    ),
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
