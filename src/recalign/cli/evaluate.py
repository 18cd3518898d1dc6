"""`recalign evaluate TARGET ...` and `recalign evaluate merge DIR... --out DIR`.

TARGET is a fine-tuned model (a training run, a `recalign run` directory) or a model
evaluated zero-shot (a model directory, a `.gguf` file, a tiny preset, a hub name).
`evaluate TARGET` is shorthand for `evaluate run TARGET`: the group forwards any first
argument that is not a sub-command to `run`, so both spellings work.
"""

from __future__ import annotations

from pathlib import Path

import typer
from typer.core import TyperGroup

from recalign.cli.options import default, field_option, override_option
from recalign.evaluation.options import EvalOptions
from recalign.ranking import PROTOCOL_NAMES
from recalign.samples.mixture import MixtureConfig


class _RunByDefault(TyperGroup):
    """A group whose default sub-command is `run` (so `evaluate RUN_DIR` works)."""

    def parse_args(self, ctx, args):  # type: ignore[no-untyped-def]
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_RunByDefault,
    help=f"Evaluate a fine-tuned or a zero-shot model ({', '.join(PROTOCOL_NAMES)}) "
    "and merge shards.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command("run")
def run(
    target: str = typer.Argument(
        ...,
        help="A training run, a `recalign run` directory, or a model evaluated zero-shot: a "
        "model directory, a .gguf file, tiny-t5 / tiny-causal (random init), a hub name.",
    ),
    data: Path | None = typer.Option(
        None,
        "--data",
        help="Prepared dataset. Default for a run: the one it was trained on (a `recalign "
        "run` directory's data/); required for a model.",
    ),
    protocol: str = field_option(
        EvalOptions, "protocol", "--protocol", help=" | ".join(PROTOCOL_NAMES)
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Directory for predictions and metrics."),
    split: str = field_option(EvalOptions, "split", "--split", help="test | valid"),
    max_users: int | None = field_option(
        EvalOptions, "max_users", "--max-users", help="Evaluate a seeded subset of N users."
    ),
    template: str = field_option(EvalOptions, "template", "--template"),
    include_history: bool = typer.Option(
        not default(EvalOptions, "exclude_history"),
        "--include-history",
        help="Let retrieval return the user's own history items.",
    ),
    k: int = field_option(EvalOptions, "k", "--k"),
    beams: int = field_option(EvalOptions, "num_beams", "--beams"),
    batch_size: int = field_option(EvalOptions, "batch_size", "--batch-size"),
    reference: bool = typer.Option(
        default(EvalOptions, "decoder") == "reference",
        "--reference",
        help="Decode with generate(prefix_allowed_tokens_fn) (slow).",
    ),
    length_penalty: float = field_option(EvalOptions, "length_penalty", "--length-penalty"),
    length_normalize: bool = field_option(EvalOptions, "length_normalize", "--length-normalize"),
    num_candidates: int = field_option(EvalOptions, "num_candidates", "--num-candidates"),
    num_negatives: int = field_option(EvalOptions, "num_negatives", "--num-negatives"),
    greedy: bool = field_option(EvalOptions, "greedy_rating", "--greedy"),
    seed: int = field_option(EvalOptions, "seed", "--seed"),
    shard: int | None = field_option(EvalOptions, "shard", "--shard"),
    num_shards: int | None = field_option(EvalOptions, "num_shards", "--num-shards"),
    which: str = field_option(EvalOptions, "which", "--which"),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda, cuda:1, ..."),
    samples: Path | None = typer.Option(
        None,
        "--samples",
        help="Zero-shot: build prompts as this samples directory's (item representation, "
        "history length, id seed, templates).",
    ),
    max_history: int | None = override_option(
        MixtureConfig,
        "max_history",
        "--max-history",
        help="Zero-shot: history items in a prompt.",
        source="--samples",
    ),
    item_repr: str | None = override_option(
        MixtureConfig,
        "item_repr",
        "--item-repr",
        help="Zero-shot: how prompts show items: title | id | id+title.",
        source="--samples",
    ),
    tokenizer: Path | None = typer.Option(
        None, "--tokenizer", help="Zero-shot: the tokenizer of a tiny preset (random init)."
    ),
    dtype: str | None = typer.Option(
        None, "--dtype", help="Zero-shot: load the model as float32 / bfloat16 / float16."
    ),
    max_source_length: int | None = field_option(
        EvalOptions,
        "max_source_length",
        "--max-source-length",
        help="Prompt budget in tokens (oldest history items dropped to fit); default: the "
        "run's training budget, none for a model evaluated zero-shot.",
    ),
) -> None:
    """Evaluate TARGET on DATA (a run with its own prompts, a model zero-shot); write OUT."""
    from recalign.artifacts import PromptSettings, SamplesDir
    from recalign.evaluation.llm import evaluate
    from recalign.threads import configure_threads
    from recalign.validation import validate

    configure_threads()

    options = validate(
        EvalOptions,
        {
            "protocol": protocol,
            "split": split,
            "max_users": max_users,
            "template": template,
            "exclude_history": not include_history,
            "k": k,
            "num_beams": beams,
            "batch_size": batch_size,
            "decoder": "reference" if reference else "fast",
            "length_penalty": length_penalty,
            "num_candidates": num_candidates,
            "length_normalize": length_normalize,
            "greedy_rating": greedy,
            "seed": seed,
            "shard": shard,
            "num_shards": num_shards,
            "which": which,
            "max_source_length": max_source_length,
            "num_negatives": num_negatives,
        },
        "recalign evaluate options",
    )
    prompt = None
    if samples is not None or max_history is not None or item_repr is not None:
        base = SamplesDir.open(samples).prompt_settings() if samples else PromptSettings()
        prompt = base.with_overrides(max_history=max_history, item_repr=item_repr)
    metrics = evaluate(
        target,
        data,
        out,
        options,
        prompt=prompt,
        tokenizer=tokenizer,
        dtype=dtype,
        device=device,
        show_progress=True,
    )
    _print_metrics(metrics, out)


@app.command("merge")
def merge(
    dirs: list[Path] = typer.Argument(..., help="Evaluation directories of the shards."),
    out: Path = typer.Option(..., "--out", "-o", help="Directory for the merged evaluation."),
) -> None:
    """Merge user-sharded evaluations and recompute the metrics."""
    from recalign.evaluation.outputs import merge_evaluations

    _print_metrics(merge_evaluations(dirs, out), out)


def _print_metrics(metrics: dict, out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        "metric",
        "value",
        "95% interval",
        title=f"{metrics['model']}, {metrics['protocol']} / {metrics['split']}: "
        f"{metrics['users']} users -> {out}",
    )
    for key, value in metrics["metrics"].items():
        low, high = metrics.get("intervals", {}).get(key, (None, None))
        interval = "" if low is None else f"[{low:.4f}, {high:.4f}]"
        table.add_row(key, f"{value:.4f}", interval)
    Console().print(table)
