"""The settings of a run in words: dataset, model, budget, mixture, protocols, users.

Everything is read from what the run directory recorded — the pipeline's manifest (or
`config.yaml`), `data/stats.json`, the training run's and the samples' manifests, and
each evaluation's `metrics.json` — and a sentence is left out when its facts are not
there (a run directory assembled by hand, an older run).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from recalign.constants import CONFIG_FILE
from recalign.ranking import FULL_RANKING, PROTOCOLS
from recalign.report.collect import Evaluation, RunEvaluations, read_stats
from recalign.report.labels import trained_model
from recalign.report.results import ResultGroup


def run_config(run: RunEvaluations) -> dict[str, Any]:
    """The pipeline configuration: from manifest.json, else config.yaml, else {}."""
    if run.manifest.get("config"):
        return dict(run.manifest["config"])
    return _recorded_config(run.run_dir)


def _recorded_config(directory: Path | None) -> dict[str, Any]:
    """The mapping in `directory`'s config.yaml; {} when there is none or it is damaged
    (a report says what it can rather than fail)."""
    if directory is None or not (directory / CONFIG_FILE).is_file():
        return {}
    try:
        loaded = yaml.safe_load((directory / CONFIG_FILE).read_text())
    except yaml.YAMLError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _dataset_name(run_dir: Path) -> str | None:
    from recalign.artifacts import DatasetManifest, PipelineDir, read_manifest
    from recalign.errors import RecalignError

    try:
        return read_manifest(PipelineDir(run_dir).data, DatasetManifest).name
    except RecalignError:
        return None


def _count(n: Any) -> str:
    return f"{int(n):,}" if isinstance(n, int | float) else str(n)


def data_sentence(
    run: RunEvaluations, config: dict[str, Any], *, brief: bool = False
) -> str | None:
    stats = read_stats(run.run_dir / "data")
    name = (config.get("data") or {}).get("name") or _dataset_name(run.run_dir)
    if not name and not stats:
        return None
    sizes = (
        f" — {_count(stats['users'])} users, {_count(stats['items'])} items, "
        f"{_count(stats['interactions'])} interactions"
        if {"users", "items", "interactions"} <= set(stats)
        else ""
    )
    if brief:
        return f"Data: {name or 'the prepared dataset'}{sizes}; each user's last item is held out."
    return (
        f"Data: {name or 'the prepared dataset'}{sizes}. Leave-one-out: each user's last "
        "interaction is the held-out test item, the one before it the validation item; "
        "models learn from the rest."
    )


def model_sentence(run: RunEvaluations) -> str | None:
    if not run.llm:
        return None
    trained = trained_model(run.llm[0], run.run_dir)
    if not trained.name:
        return None
    manifest = trained.manifest
    family = f" ({manifest['family']})" if manifest.get("family") else ""
    text = f"Language model: {trained.name}{family}, {trained.how}"
    train_config = _recorded_config(trained.directory)
    steps = manifest.get("steps_done")
    batch = train_config.get("batch_size")
    if steps and batch:
        per_step = (
            int(batch)
            * int(train_config.get("grad_accum") or 1)
            * int(manifest.get("world_size") or 1)
        )
        seen = int(steps) * per_step
        text += f" for {_count(steps)} steps of {per_step} samples: {_count(seen)} samples seen"
        total = manifest.get("train_samples")
        if total:
            text += f", {seen / total:.2f} epochs of the {_count(total)} training samples"
    elif steps:
        text += f" for {_count(steps)} steps"
    if manifest.get("lora"):
        text += "; only the LoRA adapters were trained"
    return text + "."


def mixture_sentence(run: RunEvaluations) -> str | None:
    if not run.llm:
        return None
    samples = trained_model(run.llm[0], run.run_dir).samples
    preset = samples.get("preset")
    counts = (samples.get("counts") or {}).get("train") or {}
    if not preset and not counts:
        return None
    tasks = ", ".join(f"{task} {_count(n)}" for task, n in counts.items())
    return f"Task mixture: {preset or 'custom'}" + (
        f" — training samples per task: {tasks}." if tasks else "."
    )


def _protocol_words(evaluation: Evaluation, num_items: Any) -> str:
    options = evaluation.raw.get("options") or {}
    protocol = evaluation.protocol
    if protocol == "retrieval":
        catalogue = f" of {_count(num_items)} items" if num_items else ""
        beams = f", {options['num_beams']} beams" if options.get("num_beams") else ""
        top = f", top {options['k']}" if options.get("k") else ""
        return (
            f"retrieval — rank the whole catalogue{catalogue} (the LLM by constrained beam "
            f"search{beams}{top}; the baselines score every item)"
        )
    if protocol == "ranking":
        k = options.get("num_candidates")
        return f"ranking — order {k or 'K'} candidates listed in the prompt"
    if protocol == "sampled":
        n = options.get("num_negatives")
        return f"sampled — rank the held-out item among {n or 'n'} random items"
    if protocol == "rating":
        return "rating — predict the star rating the user gave the held-out item"
    return protocol


def protocols_sentence(run: RunEvaluations, groups: Sequence[ResultGroup]) -> str | None:
    llm = [e for group in groups for e in group.llm]
    if not llm:
        return None
    num_items = read_stats(run.run_dir / "data").get("items")
    # A protocol with several LLM rows (compare presets, zero-shot) is described once.
    phrases = dict.fromkeys(_protocol_words(e, num_items) for e in llm)
    return "Protocols: " + "; ".join(phrases) + "."


def history_words(protocol: str, rule: Any) -> str:
    """What `exclude_history` means for a protocol, in words (the ranking core's table;
    a protocol it does not know is read like full ranking)."""
    return PROTOCOLS.get(protocol, PROTOCOLS[FULL_RANKING]).history_words(rule)


def group_history(group: ResultGroup) -> str:
    """The history rule of one protocol's rows in words; who follows which if they differ."""
    rules: dict[str, list[str]] = {}
    for e in group.rows:
        words = history_words(group.protocol, e.raw.get("exclude_history"))
        rules.setdefault(words, []).append(e.base_name)
    if len(rules) == 1:
        return next(iter(rules))
    detail = "; ".join(f"{', '.join(dict.fromkeys(m))}: {w}" for w, m in rules.items())
    return f"differs between models! {detail}"


def history_sentence(groups: Sequence[ResultGroup]) -> str | None:
    parts = [f"{group.protocol}: {group_history(group)}" for group in groups]
    return "History rule per protocol — " + "; ".join(parts) + "." if parts else None


def users_sentence(run: RunEvaluations, config: dict[str, Any]) -> str | None:
    split = next((e.split for e in run.all), None)
    if split is None:
        return None
    llm_users = sorted({e.users for e in run.llm})
    base_users = sorted({e.users for e in run.baselines})
    parts = []
    if llm_users:
        max_users = (config.get("evaluation") or {}).get("max_users")
        sample = (
            f" (a seeded sample: evaluation.max_users = {max_users})"
            if max_users and base_users and max(base_users) > max(llm_users)
            else ""
        )
        parts.append(f"the LLM on {' / '.join(map(_count, llm_users))} users{sample}")
    if base_users:
        everyone = read_stats(run.run_dir / "data").get("users") == max(base_users)
        all_ = "all " if everyone and len(base_users) == 1 else ""
        parts.append(f"the baselines on {all_}{' / '.join(map(_count, base_users))}")
    if run.same_users:
        parts.append("and again on exactly the LLM's users (rows marked 'same users')")
    return f"Users ({split} split): " + ", ".join(parts) + "."


def short_settings(run: RunEvaluations, groups: Sequence[ResultGroup]) -> list[str]:
    """The settings a terminal has room for (the tables' titles and captions say the rest)."""
    config = run_config(run)
    lines = [data_sentence(run, config, brief=True), model_sentence(run), mixture_sentence(run)]
    return [line for line in (*lines, users_sentence(run, config)) if line]


def settings_lines(run: RunEvaluations, groups: Sequence[ResultGroup]) -> list[str]:
    config = run_config(run)
    lines = [
        data_sentence(run, config),
        model_sentence(run),
        mixture_sentence(run),
        protocols_sentence(run, groups),
        history_sentence(groups),
        users_sentence(run, config),
    ]
    if config.get("seed") is not None:
        lines.append(f"Seed: {config['seed']}.")
    return [line for line in lines if line]
