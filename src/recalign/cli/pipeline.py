"""`recalign run`, `recalign ablate`, `recalign report`."""

from __future__ import annotations

from pathlib import Path

import typer

from recalign.cli.console import console, print_results


def run(
    config: Path = typer.Argument(None, help="Run configuration (YAML); omit for the demo."),
    out: Path = typer.Option(None, "--out", "-o", help="Run directory (default runs/<name>)."),
) -> None:
    """Run the whole pipeline: prepare -> samples -> train -> evaluate -> baselines -> report."""
    from recalign.pipeline.config import load_config
    from recalign.pipeline.run import run_pipeline

    cfg = load_config(config)
    run_dir = out or Path("runs") / cfg.name
    console.print(f"[bold]recalign run[/bold] {cfg.name} -> {run_dir}")
    result = run_pipeline(cfg, run_dir, on_stage=lambda m: console.print(f"  [cyan]{m}[/cyan]"))
    print_results(run_dir)
    if result.report:
        console.print(f"report: {result.report} and {result.report.with_suffix('.html')}")


def ablate(
    config: Path = typer.Argument(None, help="Run configuration (YAML); omit for the demo."),
    presets: str = typer.Option(
        "rec-only,rec+mim,rec+bpr,rec+mlm,paper", help="Comma-separated presets; first = reference."
    ),
    seeds: str = typer.Option("0", help="Comma-separated seeds."),
    out: Path = typer.Option(
        None, "--out", "-o", help="Root directory (default runs/<name>-ablation)."
    ),
) -> None:
    """Train and evaluate each task mixture under the same budget; tabulate the differences."""
    from recalign.errors import ConfigError
    from recalign.pipeline.ablate import run_ablation
    from recalign.pipeline.config import load_config

    cfg = load_config(config)
    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"--seeds must be comma-separated integers, got {seeds!r}") from None
    root = out or Path("runs") / f"{cfg.name}-ablation"
    table = run_ablation(
        cfg,
        root,
        [p.strip() for p in presets.split(",") if p.strip()],
        seed_list,
        on_stage=lambda m: console.print(f"  [cyan]{m}[/cyan]"),
    )
    from rich.table import Table

    view = Table(*table["header"], title="Ablation (retrieval, full ranking)")
    for row in table["rows"]:
        view.add_row(*row)
    console.print(view)
    from recalign.report import build_report

    md, _ = build_report(root)
    console.print(f"report: {md}")


def report(run_dir: Path = typer.Argument(..., help="A run directory.")) -> None:
    """Rebuild report.md and report.html of a run directory."""
    from recalign.report import build_report

    md, html = build_report(run_dir)
    console.print(f"report: {md} and {html}")
