"""`recalign baseline NAME --data DIR --out DIR`: fit, early-stop, evaluate, write outputs.

Wire into the root app with `app.command("baseline")(baseline_cli.baseline)`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from recalign.cli.options import default, field_option
from recalign.errors import ConfigError
from recalign.evaluation.options import EvalOptions

app = typer.Typer(help="Conventional baselines on the same split and evaluator.")


def _parse_set(values: list[str]) -> dict[str, Any]:
    import yaml

    out: dict[str, Any] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


@app.command()
def baseline(
    # The registry's names (tests/baselines/test_cli.py keeps them in step); the registry
    # itself is imported when the command runs.
    name: str = typer.Argument(
        ...,
        help="pop, bprmf, sasrec (BCE), sasrec-ce, global-mean, user-mean, item-mean, biased-mf.",
    ),
    data: Path = typer.Option(..., "--data", help="A prepared-dataset directory."),
    out: Path = typer.Option(..., "--out", help="Output directory."),
    split: str = field_option(EvalOptions, "split", "--split"),
    include_history: bool = typer.Option(
        not default(EvalOptions, "exclude_history"),
        "--include-history",
        help="Rank the user's history items too (as RecBole's full sort); default: excluded.",
    ),
    epochs: int | None = typer.Option(None, "--epochs", help="Maximum training epochs."),
    seed: int | None = typer.Option(None, "--seed", help="Random seed."),
    device: str | None = typer.Option(None, "--device", help="cpu or cuda."),
    threads: int | None = typer.Option(None, "--threads", help="torch CPU threads."),
    k: int = field_option(EvalOptions, "k", "--k", help="Length of each user's ranked list."),
    config: Path | None = typer.Option(None, "--config", help="YAML of config values."),
    set_: list[str] = typer.Option([], "--set", help="KEY=VALUE config override (repeatable)."),
) -> None:
    """Train a baseline on the train part (early stopping on valid NDCG@10), evaluate the
    split over the whole catalogue and write predictions.jsonl and metrics.json."""
    from recalign.baselines.registry import get_spec
    from recalign.baselines.run import run_baseline
    from recalign.threads import configure_threads
    from recalign.validation import read_yaml

    spec = get_spec(name)
    configure_threads()
    overrides: dict[str, Any] = read_yaml(config, what="--config") if config is not None else {}
    overrides.update(_parse_set(set_))
    for key, value in (("epochs", epochs), ("device", device), ("num_threads", threads)):
        if value is not None:
            if key not in spec.config_model.model_fields:
                raise ConfigError(f"--{key.replace('num_', '')} does not apply to {name}")
            overrides[key] = value
    if seed is not None:
        overrides["seed"] = seed
    metrics = run_baseline(
        name, data, out, split=split, exclude_history=not include_history, k=k, overrides=overrides
    )
    shown = ", ".join(f"{key} {value:.4f}" for key, value in metrics["metrics"].items())
    typer.echo(f"{name} on {split} ({metrics['users']} users): {shown}")
    typer.echo(f"wrote {out}")
