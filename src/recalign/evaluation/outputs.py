"""Per-user predictions and `metrics.json`: one format for LLM evaluations and baselines.

    DIR/predictions.jsonl   one JSON object per user
        ranking-like:  {"user_id", "target", "ranked": [item ids, best first], "scores": [...]}
        rating:        {"user_id", "item", "rating", "prediction"}
    DIR/metrics.json        protocol, split, model, users, exclude_history, template,
                            metrics, intervals, bootstrap, plus any extra keys
    DIR/manifest.json       an `EvaluationManifest` (`recalign.artifacts`): the files'
                            sha256, the content hashes of what was evaluated (written last)

`write_evaluation` commits the directory whole (`recalign.artifacts.staged_output`); a
baseline writes the same two files inside its own directory (`write_evaluation_files`).
Readers open a directory only when its manifest verifies; a file named directly (one an
outside tool wrote, say) is read as it is.

Metrics are always computed over the predictions sorted by user id, so the bootstrap
draws (and hence the intervals) do not depend on the order in which users were
evaluated, and user-sharded evaluations merge to exactly the unsharded result.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from recalign.artifacts import (
    BaselineDir,
    EvaluationDir,
    EvaluationManifest,
    InputRecord,
    artifact_kind,
    staged_output,
)
from recalign.constants import (
    ITEM,
    METRICS_FILE,
    PREDICTION,
    PREDICTIONS_FILE,
    RANKED,
    RATING,
    SCORES,
    TARGET,
    USER_ID,
)
from recalign.errors import DataFormatError, IncompatibleArtifactError, RecalignError
from recalign.evaluation.metrics import (
    per_user_ranking_metrics,
    per_user_rating_errors,
    summarize,
    target_ranks,
)
from recalign.fileio import iter_jsonl, read_json
from recalign.manifest import write_json
from recalign.ranking import (
    RANKED_RECORD_KEYS,
    RATING_RECORD_KEYS,
    canonical_protocol,
    get_protocol,
)

logger = logging.getLogger(__name__)

# Keys of metrics.json that write_evaluation owns; `extra` may not override them.
CORE_KEYS = (
    "protocol",
    "split",
    "model",
    "users",
    "exclude_history",
    "template",
    "metrics",
    "intervals",
    "bootstrap",
    "by_group",
)
# Keys that must agree between the shards of one evaluation.
_IDENTITY_KEYS = ("protocol", "split", "model", "exclude_history", "template")
_UNSET = object()


def _json_default(value: Any) -> Any:
    # numpy scalars and arrays come straight out of models and baselines.
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def _check_record(record: Mapping[str, Any], rating: bool, where: str, line: int | None) -> None:
    required = RATING_RECORD_KEYS if rating else RANKED_RECORD_KEYS
    for key in required:
        if key not in record:
            kind = "rating" if rating else "ranking"
            raise DataFormatError(
                f"a {kind} prediction needs the keys {list(required)}; {key!r} is missing",
                path=where,
                line=line,
                field=key,
            )
    numeric = (RATING, PREDICTION) if rating else (USER_ID, TARGET)
    for key in (USER_ID, *numeric):
        value = record[key]
        if isinstance(value, bool) or not isinstance(value, int | float | np.number):
            raise DataFormatError(
                f"{key!r} must be a number, got {value!r}", path=where, line=line, field=key
            )
    if not rating:
        ranked = record[RANKED]
        if not isinstance(ranked, Sequence | np.ndarray) or isinstance(ranked, str):
            raise DataFormatError("'ranked' must be a list of item ids", path=where, line=line)
        scores = record.get(SCORES)
        if scores is not None and len(scores) != len(ranked):
            raise DataFormatError(
                f"'scores' has {len(scores)} values for {len(ranked)} ranked items",
                path=where,
                line=line,
                field=SCORES,
            )


def _sorted_by_user(predictions: Sequence[Mapping[str, Any]], where: str) -> list[Mapping]:
    ordered = sorted(predictions, key=lambda r: int(r[USER_ID]))
    users = np.fromiter((int(r[USER_ID]) for r in ordered), dtype=np.int64, count=len(ordered))
    if users.size > 1 and (dupes := users[1:][users[1:] == users[:-1]]).size:
        raise DataFormatError(
            f"{np.unique(dupes).size} user(s) have more than one prediction, "
            f"e.g. user {int(dupes[0])}; one prediction per user is expected",
            path=where,
            field=USER_ID,
        )
    return ordered


def per_user_metrics(
    predictions: Sequence[Mapping[str, Any]], protocol: str, where: str = "predictions"
) -> dict[str, np.ndarray]:
    """Per-user metric arrays for a protocol's predictions, in user-id order."""
    rating = get_protocol(protocol).predicts_rating
    for i, record in enumerate(predictions):
        _check_record(record, rating, where, line=i + 1)
    ordered = _sorted_by_user(predictions, where)
    if rating:
        return per_user_rating_errors(
            [float(r[RATING]) for r in ordered], [float(r[PREDICTION]) for r in ordered]
        )
    ranks = target_ranks([r[RANKED] for r in ordered], [int(r[TARGET]) for r in ordered])
    return per_user_ranking_metrics(ranks)


def compute_metrics(
    predictions: Sequence[Mapping[str, Any]],
    *,
    protocol: str,
    split: str,
    model: str,
    exclude_history: bool | None,
    template: str | None = None,
    extra: Mapping[str, Any] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    ci: float = 0.95,
    cold_items: Iterable[int] | None = None,
) -> dict[str, Any]:
    """The `metrics.json` payload for a list of predictions (pure; writes nothing).

    With `cold_items` (non-empty), `by_group` holds the same summary over the test cases
    whose held-out item is warm and over those whose held-out item is cold.
    """
    if not predictions:
        raise RecalignError(f"no predictions to evaluate for model {model!r} ({protocol})")
    clash = sorted(set(extra or {}) & set(CORE_KEYS))
    if clash:
        raise RecalignError(f"extra metrics.json keys {clash} would override the standard keys")
    per_user = per_user_metrics(predictions, protocol)
    means, intervals = summarize(per_user, n_boot=n_boot, seed=seed, ci=ci)
    return {
        "protocol": protocol,
        "split": split,
        "model": model,
        "users": len(predictions),
        "exclude_history": exclude_history,
        "template": template,
        "metrics": means,
        "intervals": intervals,
        "bootstrap": {"resamples": n_boot, "confidence": ci, "seed": seed},
        **_by_group(predictions, protocol, cold_items, n_boot=n_boot, seed=seed, ci=ci),
        **dict(extra or {}),
    }


def _held_out(record: Mapping[str, Any]) -> int:
    return int(record[TARGET] if TARGET in record else record[ITEM])


def _by_group(
    predictions: Sequence[Mapping[str, Any]],
    protocol: str,
    cold_items: Iterable[int] | None,
    **bootstrap: Any,
) -> dict[str, Any]:
    """`{"by_group": {"warm": ..., "cold": ...}}` when there are cold items, else `{}`."""
    cold = {int(i) for i in (cold_items if cold_items is not None else ())}
    if not cold:
        return {}
    groups: dict[str, Any] = {}
    for name, wanted in (("warm", False), ("cold", True)):
        chosen = [r for r in predictions if (_held_out(r) in cold) == wanted]
        if not chosen:
            groups[name] = {"users": 0, "metrics": {}, "intervals": {}}
            continue
        means, intervals = summarize(per_user_metrics(chosen, protocol), **bootstrap)
        groups[name] = {"users": len(chosen), "metrics": means, "intervals": intervals}
    # The cold set travels with the metrics, so recompute and merge can regroup.
    return {"by_group": {"cold_items": sorted(cold), **groups}}


def _stored_cold(metrics: Mapping[str, Any]) -> list[int] | None:
    group = metrics.get("by_group")
    return list(group.get("cold_items") or []) if isinstance(group, dict) else None


def write_predictions(path: str | Path, predictions: Iterable[Mapping[str, Any]]) -> Path:
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as handle:
        for record in predictions:
            handle.write(json.dumps(dict(record), default=_json_default) + "\n")
    tmp.replace(path)  # atomic: a killed evaluation never leaves half a file behind
    return path


def write_evaluation_files(directory: str | Path, predictions: list[dict], metrics: dict) -> dict:
    """Write `predictions.jsonl` and `metrics.json` into `directory` (no manifest: the
    caller commits the directory); returns the metrics as `metrics.json` holds them."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    write_predictions(directory / PREDICTIONS_FILE, predictions)
    # Round-trip through JSON so the returned dict equals what metrics.json holds.
    metrics = json.loads(json.dumps(metrics, default=_json_default))
    write_json(directory / METRICS_FILE, metrics)
    logger.info(
        "%s %s/%s: %d users, %s",
        metrics["model"],
        metrics["protocol"],
        metrics["split"],
        metrics["users"],
        ", ".join(f"{k}={v:.4f}" for k, v in metrics["metrics"].items()),
    )
    return metrics


def write_evaluation(
    out_dir: str | Path,
    predictions: list[dict],
    *,
    protocol: str,
    split: str,
    model: str,
    exclude_history: bool | None,
    template: str | None = None,
    extra: dict | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    ci: float = 0.95,
    cold_items: Iterable[int] | None = None,
    inputs: Mapping[str, InputRecord] | None = None,
) -> dict:
    """Write the evaluation directory `out_dir` (predictions, metrics and a manifest
    recording `inputs`, what was evaluated), whole; return the metrics dict."""
    metrics = compute_metrics(
        predictions,
        cold_items=cold_items,
        protocol=protocol,
        split=split,
        model=model,
        exclude_history=exclude_history,
        template=template,
        extra=extra,
        n_boot=n_boot,
        seed=seed,
        ci=ci,
    )
    with staged_output(out_dir, EvaluationManifest) as staging:
        metrics = write_evaluation_files(staging.path, predictions, metrics)
        staging.commit(
            EvaluationManifest(
                protocol=protocol,
                split=split,
                model=model,
                users=int(metrics["users"]),
                inputs=dict(inputs or {}),
            )
        )
    return metrics


def open_evaluation(directory: str | Path) -> EvaluationDir | BaselineDir:
    """An evaluation directory, or a baseline's (which holds the same two files)."""
    if artifact_kind(directory) == "baseline":
        return BaselineDir.open(directory)
    return EvaluationDir.open(directory)


def _evaluation_file(path_or_dir: str | Path, name: str) -> Path:
    """`name` in a (verified) evaluation directory, or the file itself: a file in an
    artefact directory is verified with it, one elsewhere read as it is."""
    path = Path(path_or_dir)
    if path.is_dir():
        return open_evaluation(path).path / name
    if not path.is_file():
        raise RecalignError(f"{path} not found: not an evaluation output (no {name})")
    if artifact_kind(path.parent) is not None:
        open_evaluation(path.parent)
    return path


def read_predictions(path_or_dir: str | Path) -> list[dict]:
    """Read `predictions.jsonl` (a file or an evaluation directory)."""
    path = _evaluation_file(path_or_dir, PREDICTIONS_FILE)
    records = []
    for line_no, record in iter_jsonl(path):
        if not isinstance(record, dict) or USER_ID not in record:
            raise DataFormatError(
                f"expected a JSON object with {USER_ID!r}", path=path, line=line_no
            )
        records.append(record)
    return records


def read_metrics(path_or_dir: str | Path) -> dict:
    """Read `metrics.json` (a file or an evaluation directory), under today's protocol names."""
    path = _evaluation_file(path_or_dir, METRICS_FILE)
    metrics = read_json(path)
    if isinstance(metrics, dict) and "protocol" in metrics:
        # The one place a legacy protocol name (`full`) is read: every reader sees today's.
        metrics["protocol"] = canonical_protocol(metrics["protocol"])
    return metrics


def metrics_from_predictions(
    path_or_dir: str | Path,
    *,
    protocol: str | None = None,
    split: str | None = None,
    model: str | None = None,
    exclude_history: Any = _UNSET,
    template: Any = _UNSET,
    extra: dict | None = None,
    n_boot: int | None = None,
    seed: int | None = None,
    ci: float | None = None,
) -> dict:
    """Recompute the metrics from `predictions.jsonl`.

    Options left out are taken from the `metrics.json` next to the predictions (so
    `metrics_from_predictions(dir) == read_metrics(dir)` for an untouched directory);
    without one, `protocol`, `split` and `model` must be given.
    """
    path = _evaluation_file(path_or_dir, PREDICTIONS_FILE)
    stored = (
        read_metrics(path.parent / METRICS_FILE) if (path.parent / METRICS_FILE).is_file() else {}
    )
    bootstrap = stored.get("bootstrap", {})
    options = {
        "protocol": protocol if protocol is not None else stored.get("protocol"),
        "split": split if split is not None else stored.get("split"),
        "model": model if model is not None else stored.get("model"),
    }
    missing = [key for key, value in options.items() if value is None]
    if missing:
        raise RecalignError(
            f"{path.parent} has no {METRICS_FILE}: pass {', '.join(missing)} explicitly"
        )
    if extra is None:
        extra = {k: v for k, v in stored.items() if k not in CORE_KEYS}
    return compute_metrics(
        read_predictions(path),
        **options,
        exclude_history=stored.get("exclude_history")
        if exclude_history is _UNSET
        else exclude_history,
        template=stored.get("template") if template is _UNSET else template,
        extra=extra,
        n_boot=n_boot if n_boot is not None else int(bootstrap.get("resamples", 1000)),
        seed=seed if seed is not None else int(bootstrap.get("seed", 0)),
        ci=ci if ci is not None else float(bootstrap.get("confidence", 0.95)),
        cold_items=_stored_cold(stored),
    )


def merge_evaluations(dirs: Sequence[str | Path], out_dir: str | Path) -> dict:
    """Merge user-sharded evaluations into one and recompute the metrics.

    The shards must share protocol, split, model, history rule, template and bootstrap
    settings, and no user may appear in two shards. Extra keys are kept where every
    shard agrees on them; `merged_from` lists the shard directories.
    """
    if not dirs:
        raise RecalignError("nothing to merge: give at least one evaluation directory")
    opened = [open_evaluation(d) for d in dirs]
    shards = [read_metrics(d.metrics) for d in opened]
    first = shards[0]
    for directory, shard in zip(dirs[1:], shards[1:], strict=True):
        for key in (*_IDENTITY_KEYS, "bootstrap"):
            if shard.get(key) != first.get(key):
                raise IncompatibleArtifactError(
                    f"cannot merge {directory} with {dirs[0]}: {key} differs "
                    f"({shard.get(key)!r} vs {first.get(key)!r})"
                )
    owner: dict[int, str] = {}
    predictions: list[dict] = []
    for directory in dirs:
        for record in read_predictions(directory):
            user = int(record[USER_ID])
            if user in owner:
                raise IncompatibleArtifactError(
                    f"user {user} appears in both {owner[user]} and {directory}: "
                    "shards must split the users without overlap"
                )
            owner[user] = str(directory)
            predictions.append(record)
    extra_keys = set.intersection(*(set(s) - set(CORE_KEYS) for s in shards))
    extra = {k: first[k] for k in sorted(extra_keys) if all(s[k] == first[k] for s in shards)}
    extra["merged_from"] = [str(d) for d in dirs]
    bootstrap = first.get("bootstrap", {})
    predictions.sort(key=lambda r: int(r[USER_ID]))
    return write_evaluation(
        out_dir,
        predictions,
        **{key: first.get(key) for key in _IDENTITY_KEYS},
        extra=extra,
        n_boot=int(bootstrap.get("resamples", 1000)),
        seed=int(bootstrap.get("seed", 0)),
        ci=float(bootstrap.get("confidence", 0.95)),
        cold_items=_stored_cold(first),
        inputs={f"shard-{i}": shard.record_for(out_dir) for i, shard in enumerate(opened)},
    )


def rewrite_metrics(directory: str | Path, metrics: dict) -> None:
    """Replace the `metrics.json` of an evaluation (or baseline) directory, committing
    the directory again with the same records (`recalign metrics recompute --write`)."""
    import shutil

    opened = open_evaluation(directory)
    made = {"created", "versions", "git_revision", "command", "files", "content_hash"}
    manifest = type(opened.manifest)(**opened.manifest.model_dump(exclude=made))
    with staged_output(opened.path, type(opened.manifest)) as staging:
        shutil.copytree(opened.path, staging.path, dirs_exist_ok=True)
        (staging.path / "manifest.json").unlink()
        write_json(
            staging.path / METRICS_FILE, json.loads(json.dumps(metrics, default=_json_default))
        )
        staging.commit(manifest)
