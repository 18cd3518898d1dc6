"""`train(...)`: fine-tune a model on a samples directory and write a run directory.

Built on HF `Trainer`, which already does what a careful loop needs: length-grouped
sampling, gradient accumulation, mixed precision, checkpoints with optimizer, scheduler,
RNG and data position, `resume_from_checkpoint`, best-model selection on validation
loss, and multi-process training through `accelerate`. This module only wires our
config, data and run-directory contract into it.

    RUN_DIR/model/                 the best model (full weights or a LoRA adapter) + tokenizer
    RUN_DIR/checkpoints/checkpoint-N/
    RUN_DIR/tokenizer/             the tokenizer the run uses (trained, for tiny presets)
    RUN_DIR/base/                  LoRA on a tiny preset: the random-init base weights
    RUN_DIR/templates/             the samples' template files, if any (the prompts' own)
    RUN_DIR/config.yaml            the resolved TrainConfig
    RUN_DIR/manifest.json          a `RunManifest`: model, family, inputs (the content hashes
                                   of the samples and dataset), prompt settings, lora, status,
                                   steps, and the sha256 of every file above
    RUN_DIR/train_log.jsonl        one record per logging / evaluation step
    RUN_DIR/data-cache/            while training only: the samples' texts, memory-mapped

A run is written in place for hours, so it is not staged like the other artefacts: it
holds its output directory's lock while it trains, and commits by writing its manifest
last — status "running" with the files so far at the start, "done" (or "interrupted",
"stopped") with the saved model's files at the end. Readers take the best model only
from a "done" run whose files verify. Checkpoints are not in the manifest (they rotate;
each is checked when resumed from); a resume refuses other data or samples.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recalign.artifacts.dirs import (
    BASE_DIR,
    DATA_CACHE_DIR,
    LOG_FILE,
    MODEL_DIR,
    TEMPLATES_DIR,
    TOKENIZER_DIR,
)
from recalign.constants import CONFIG_FILE
from recalign.errors import ConfigError, RecalignError
from recalign.training.checkpoints import CHECKPOINTS_DIR, ResumePoint, resume_point
from recalign.training.config import LORA_TARGETS, TrainConfig, dump_config, load_config

logger = logging.getLogger(__name__)
# Settings that decide which samples a run sees: a resumed run must keep them.
DATA_KEYS = ("max_train_samples", "max_eval_samples")
# Tokenizer training for tiny presets reads this many sample prompts and answers, so the
# template words are in the vocabulary.
TOKENIZER_SAMPLE_TEXTS = 20_000


@dataclass
class RunResult:
    run_dir: Path
    steps: int
    best_step: int | None
    best_eval_loss: float | None
    interrupted: bool
    train_seconds: float
    model: Any = None  # the trained (best) model in memory, for notebook use
    tokenizer: Any = None
    stop_signal: str | None = None  # SIGINT or SIGTERM when `interrupted`


def _precision_flags(precision: str) -> dict[str, bool]:
    import torch

    cuda = torch.cuda.is_available()
    if precision == "auto":
        if cuda and torch.cuda.is_bf16_supported():
            return {"bf16": True}
        return {"fp16": True} if cuda else {}
    if precision in ("bf16", "fp16") and not cuda:
        # bf16 autocast on CPU is slower than fp32 on CPUs without AVX-512 bf16.
        raise ConfigError(f"precision {precision} needs a GPU; use precision: fp32 on CPU")
    return {precision: True} if precision != "fp32" else {}


def _prepare_run_dir(out: Path, resume: bool) -> ResumePoint | None:
    """Where to resume from (or None); refuses to overwrite another run.

    A resume starts from the newest checkpoint that verifies (`resume_point`); newer,
    damaged ones are reported and moved aside by the main process before the others look.
    """
    if not resume:
        if out.exists() and any(out.iterdir()):
            raise RecalignError(
                f"{out} already holds files: pass --resume to continue that run, or choose "
                "another --out"
            )
        return None
    state = _process_state()
    with state.main_process_first():
        point = resume_point(out, move_aside=state.is_main_process)
    if point is None:
        raise RecalignError(f"--resume: {out} has no complete checkpoint to resume from")
    return point


# What a run writes before its first checkpoint; all of it is made again from the inputs.
_BEFORE_FIRST_CHECKPOINT = {
    CONFIG_FILE,
    TOKENIZER_DIR,
    BASE_DIR,
    LOG_FILE,
    DATA_CACHE_DIR,
    CHECKPOINTS_DIR,
    TEMPLATES_DIR,
    "manifest.json",
}  # checkpoints/ here holds only a first checkpoint cut short (no trainer_state.json)


def _stopped_before_first_checkpoint(out: Path) -> bool:
    """True (after clearing it) when `out` holds a run killed before its first checkpoint.

    Operators resubmit the same `--resume` command after a kill (Slurm requeue, a
    restarted pod); a run stopped that early, or never started, has nothing to lose, so
    it starts over instead of failing. A folder holding anything else is left alone.
    """
    from recalign.training.checkpoints import checkpoint_dirs

    if not out.is_dir():
        logger.info("--resume: %s does not exist yet; starting the run", out)
        return True
    if checkpoint_dirs(out):  # a damaged one is resume_point's to report, not ours to clear
        return False
    names = {path.name for path in out.iterdir()}
    if not names <= _BEFORE_FIRST_CHECKPOINT:
        return False
    if names:
        logger.warning(
            "--resume: %s stopped before its first checkpoint; starting the run over", out
        )
    for name in names:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    return True


def _resolve_config(
    out: Path, resume: bool, config: TrainConfig | None, config_path: Any, overrides: dict
) -> TrainConfig:
    if resume:
        # The saved config defines the data order and schedule; only the length may grow.
        saved = load_config(out / CONFIG_FILE)
        for key in DATA_KEYS:
            value = overrides.get(key)
            if value is not None and value != getattr(saved, key):
                raise ConfigError(
                    f"--{key.replace('_', '-')} {value} differs from the resumed run's "
                    f"{getattr(saved, key)!r}: the samples and their order would change. Resume "
                    "without it, or start a new run with another --out."
                )
        allowed = {k: v for k, v in overrides.items() if k in ("max_steps", "epochs")}
        return saved.model_copy(update={k: v for k, v in allowed.items() if v is not None})
    if config is not None:
        return config.model_copy(
            update={k: v for k, v in overrides.items() if v is not None and k != "lora"}
        )
    return load_config(config_path, **overrides)


def _process_state() -> Any:
    import torch
    from accelerate import PartialState

    # cpu=True without CUDA: otherwise a CPU-only multi-process launch is seen as one
    # process, and the processes would not wait for each other.
    return PartialState(cpu=not torch.cuda.is_available())


def _load(
    spec: str,
    cfg: TrainConfig,
    out: Path,
    dataset: Any,
    texts: list[str],
    tokenizer_path: Any,
    new_tokens: list[str] | None = None,
) -> Any:
    """Load the model; tiny presets get their tokenizer from RUN_DIR/tokenizer once made.

    `new_tokens` (semantic ids) are added to the tokenizer and the model's embeddings.
    """
    from recalign.models import TINY_PRESETS
    from recalign.models.loading import load_model

    saved_tokenizer = out / TOKENIZER_DIR
    state = _process_state()
    # The main process trains and saves the tokenizer first; the others then read it,
    # so every process (and a resumed run) has the identical vocabulary.
    with state.main_process_first():
        if spec in TINY_PRESETS and (saved_tokenizer / "tokenizer_config.json").is_file():
            tokenizer_path = saved_tokenizer
        if spec in TINY_PRESETS and cfg.lora.enabled and (out / BASE_DIR).is_dir():
            loaded = load_model(str(out / BASE_DIR))
            loaded.spec = {"source": spec, "preset": spec, "overrides": cfg.model_overrides}
        else:
            loaded = load_model(
                spec,
                dataset=dataset,
                texts=texts,
                tokenizer_path=tokenizer_path,
                vocab_size=cfg.vocab_size,
                overrides=cfg.model_overrides,
            )
        if new_tokens:
            add_item_tokens(loaded, new_tokens)
        if state.is_main_process:
            loaded.tokenizer.save_pretrained(saved_tokenizer)
            if spec in TINY_PRESETS and cfg.lora.enabled and not (out / BASE_DIR).is_dir():
                # A LoRA adapter is useless without its exact random-init base.
                loaded.model.save_pretrained(out / BASE_DIR)
                loaded.tokenizer.save_pretrained(out / BASE_DIR)
    return loaded


def add_item_tokens(loaded: Any, tokens: list[str]) -> int:
    """Add `tokens` (whole-token item codes) to the tokenizer and resize the embeddings.

    Idempotent: a resumed run's saved tokenizer already has them. Returns how many were new.
    """
    added = loaded.tokenizer.add_tokens(list(tokens))
    if len(loaded.tokenizer) != loaded.model.get_input_embeddings().num_embeddings:
        # mean_resizing: new rows start at the mean of the old ones, not at random.
        loaded.model.resize_token_embeddings(len(loaded.tokenizer), mean_resizing=True)
    logger.info("added %d item tokens (vocabulary %d)", added, len(loaded.tokenizer))
    return int(added)


def _semantic_tokens(samples: str | Path, manifest: Any) -> list[str] | None:
    """The added tokens of semantic-id samples, else None."""
    from recalign.samples.representation import is_semantic
    from recalign.samples.semantic import SEMANTIC_IDS_FILE, code_tokens

    if not is_semantic(str(manifest.item_repr)):
        return None
    import polars as pl

    path = Path(samples) / SEMANTIC_IDS_FILE
    if not path.is_file():
        raise RecalignError(f"{path} is missing: regenerate the samples with semantic ids")
    return code_tokens(pl.read_parquet(path).get_column("code").to_list())


def _apply_lora(loaded: Any, cfg: TrainConfig, new_tokens: list[str] | None = None) -> Any:
    """`loaded.model` with LoRA adapters; the embedding rows of `new_tokens` (tokens the
    run added, e.g. semantic-id codes) are trained too, as peft's trainable tokens: a
    frozen embedding would leave every code at the mean it started from."""
    from peft import LoraConfig, TaskType, get_peft_model

    model_type = loaded.model.config.model_type
    targets = cfg.lora.target_modules or LORA_TARGETS.get(model_type)
    token_ids = (
        sorted(set(loaded.tokenizer.convert_tokens_to_ids(list(new_tokens))))
        if new_tokens
        else None
    )
    peft_config = LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=targets,  # None: peft's own table for this architecture
        task_type=TaskType.SEQ_2_SEQ_LM if loaded.family == "seq2seq" else TaskType.CAUSAL_LM,
        trainable_token_indices=token_ids,
    )
    from recalign.models.loading import peft_checkpointing_warning_silenced

    try:
        with peft_checkpointing_warning_silenced():
            return get_peft_model(loaded.model, peft_config)
    except ValueError as error:
        raise ConfigError(
            f"LoRA cannot be applied to {model_type!r}: {error}. Set lora.target_modules "
            "to the names of its linear layers."
        ) from error


def _holding_the_lock(fn: Callable[..., RunResult]) -> Callable[..., RunResult]:
    """Run `fn(data, samples, model, out, ...)` holding `out`'s write lock (in the main
    process): a second `recalign train --out` of the same run fails at once."""

    @functools.wraps(fn)
    def locked(data: Any, samples: Any, model: str, out: Any, **options: Any) -> RunResult:
        from recalign.artifacts import output_lock

        if not _process_state().is_main_process:
            return fn(data, samples, model, out, **options)
        with output_lock(out):
            return fn(data, samples, model, out, **options)

    return locked


@_holding_the_lock
def train(
    data: str | Path,
    samples: str | Path,
    model: str,
    out: str | Path,
    *,
    config: TrainConfig | None = None,
    config_path: str | Path | None = None,
    max_steps: int | None = None,
    epochs: float | None = None,
    lora: bool | None = None,
    max_train_samples: int | None = None,
    max_eval_samples: int | None = None,
    resume: bool = False,
    tokenizer_path: str | Path | None = None,
    callbacks: list[Any] | None = None,
    progress: bool = True,
) -> RunResult:
    """Fine-tune `model` on the samples in `samples` (made from the dataset in `data`).

    `config` (or the YAML at `config_path`) is the `TrainConfig`; `max_steps`, `epochs`,
    `lora`, `max_train_samples` and `max_eval_samples` override it. `resume` continues
    the run in `out` from its last checkpoint. Extra HF `TrainerCallback`s may be passed
    in `callbacks`.
    """
    from transformers import set_seed

    from recalign.data.store import load_prepared
    from recalign.training.config import eval_sample_limit
    from recalign.training.data import Lengths, open_samples
    from recalign.training.stream import build_text_set, choose_rows, head_texts, open_split

    out = Path(out)
    overrides = {
        "max_steps": max_steps,
        "epochs": epochs,
        "lora": lora,
        "max_train_samples": max_train_samples,
        "max_eval_samples": max_eval_samples,
    }
    if resume and _stopped_before_first_checkpoint(out):
        resume = False  # nothing to resume: the same command starts it over
    resume_from = _prepare_run_dir(out, resume)
    cfg = _resolve_config(out, resume, config, config_path, overrides)
    dataset = load_prepared(data)
    samples_dir = open_samples(samples, dataset.data_hash)
    inputs = {"samples": samples_dir.record_for(out), "dataset": dataset.record_for(out)}
    if resume:
        _check_resumed_inputs(out, inputs)
    samples_manifest = samples_dir.manifest
    train_split = open_split(samples, "train", tasks=cfg.tasks)
    valid_split = open_split(samples, "valid", tasks=cfg.tasks)
    state = _process_state()
    train_rows = choose_rows(train_split.rows, cfg.max_train_samples, cfg.seed)
    eval_limit = eval_sample_limit(cfg, state.num_processes)
    valid_rows = choose_rows(valid_split.rows, eval_limit, cfg.seed)
    out.mkdir(parents=True, exist_ok=True)

    texts = head_texts(train_split, train_rows, TOKENIZER_SAMPLE_TEXTS)
    set_seed(cfg.seed)  # the random init of tiny presets and LoRA weights is part of the run
    new_tokens = _semantic_tokens(samples, samples_manifest)
    loaded = _load(model, cfg, out, dataset, texts, tokenizer_path, new_tokens)
    del texts
    if samples_manifest.family != loaded.family:
        logger.warning(
            "samples were generated for %s models but %s is %s",
            samples_manifest.family,
            model,
            loaded.family,
        )
    if cfg.lora.enabled:
        loaded.model = _apply_lora(loaded, cfg, new_tokens)

    lengths = Lengths(cfg.max_source_length, cfg.max_target_length, cfg.truncation_side)
    # Each process streams its own copy: nothing to coordinate, and it is deleted at the end.
    cache = out / DATA_CACHE_DIR / f"rank-{state.process_index}"
    shutil.rmtree(cache, ignore_errors=True)  # left by a killed run
    cache.mkdir(parents=True)
    try:
        texts_for = {"tokenizer": loaded.tokenizer, "family": loaded.family, "lengths": lengths}
        train_set = build_text_set(
            train_split, train_rows, cache / "train.arrow", source=cfg.length_source, **texts_for
        )
        valid_set = build_text_set(
            valid_split, valid_rows, cache / "valid.arrow", source=cfg.length_source, **texts_for
        )
        manifest_fields = {
            "model": {**loaded.spec, "source": model},
            "family": loaded.family,
            "inputs": inputs,
            "prompt": _prompt_record(samples_dir, cfg, out),
            "lora": cfg.lora.model_dump() if cfg.lora.enabled else None,
            "train_samples": len(train_set),
            "valid_samples": len(valid_set),
        }
        return _fit(
            cfg,
            loaded,
            train_set,
            valid_set,
            out,
            resume_from,
            manifest_fields,
            callbacks,
            progress,
        )
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        with contextlib.suppress(OSError):  # another process still has its copy there
            (out / DATA_CACHE_DIR).rmdir()


def _check_resumed_inputs(out: Path, inputs: dict[str, Any]) -> None:
    """A resumed run continues on the data and samples it started with, or not at all."""
    from recalign.artifacts import RunManifest, read_manifest

    recorded = read_manifest(out, RunManifest).inputs
    for role, flag in (("dataset", "--data"), ("samples", "--samples")):
        before, now = recorded.get(role), inputs[role]
        if before is None or before.content_hash != now.content_hash:
            was = "nothing" if before is None else f"{before.path} ({before.content_hash[:12]}…)"
            raise RecalignError(
                f"--resume: {flag} is not the {role} this run was trained on (content hash "
                f"{now.content_hash[:12]}…; the run recorded {was}): resume with the {flag} it "
                "was started with, or start a new run with another --out"
            )


def _prompt_record(samples: Any, cfg: TrainConfig, out: Path) -> Any:
    """How the run's prompts are built (the samples' settings, the trained tasks, the
    budget); the samples' template files are copied into the run."""
    from recalign.artifacts import PromptRecord
    from recalign.samples.semantic import SEMANTIC_CODEBOOK_FILE, SEMANTIC_IDS_FILE

    m = samples.manifest
    for name in m.templates:
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(samples.path / name, out / name)
    tasks = [t for t in m.tasks if cfg.tasks is None or t in cfg.tasks]
    semantic_ids = None
    if (samples.path / SEMANTIC_IDS_FILE).is_file():
        # The codes travel with the run, as its templates do: evaluation and serving
        # render items with exactly the codes the model learnt.
        semantic_ids = SEMANTIC_IDS_FILE
        shutil.copyfile(samples.path / SEMANTIC_IDS_FILE, out / SEMANTIC_IDS_FILE)
        if (samples.path / SEMANTIC_CODEBOOK_FILE).is_file():  # samples older than it lack it
            shutil.copyfile(samples.path / SEMANTIC_CODEBOOK_FILE, out / SEMANTIC_CODEBOOK_FILE)
    return PromptRecord(
        semantic_ids=semantic_ids,
        item_repr=m.item_repr,
        max_history=m.max_history,
        id_seed=m.id_seed,
        separator=m.separator,
        templates=list(m.templates),
        tasks=tasks,
        preset=m.preset,
        max_source_length=cfg.max_source_length,
    )


def _fit(
    cfg: TrainConfig,
    loaded: Any,
    train_set: Any,
    valid_set: Any,
    out: Path,
    resume_from: ResumePoint | None,
    manifest_fields: dict[str, Any],
    callbacks: list[Any] | None,
    progress: bool,
) -> RunResult:
    """Check memory, run the Trainer, save the best model and the manifest."""
    import time

    import torch
    from transformers import TrainingArguments

    from recalign.manifest import config_hash
    from recalign.training.callbacks import (
        BarProgressCallback,
        EvalTimeCallback,
        InterruptCallback,
        JsonlLogCallback,
        OwnCheckpointsCallback,
        append_record,
    )
    from recalign.training.data import Collator, Lengths
    from recalign.training.memory import (
        check_memory,
        device_memory_bytes,
        free_memory_bytes,
        model_dims,
    )
    from recalign.training.trainer import RecalignTrainer

    precision = _precision_flags(cfg.precision)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    longest = int(train_set.lengths.max())
    need = check_memory(
        model_dims(loaded.model),
        batch_size=cfg.batch_size,
        seq_len=min(longest, cfg.max_source_length + cfg.max_target_length),
        target_len=cfg.max_target_length if loaded.family == "seq2seq" else longest,
        bytes_per_value=2 if precision else 4,
        checkpointing=cfg.gradient_checkpointing,
        available=device_memory_bytes(device),
        fraction=cfg.memory_fraction,
        samples=len(train_set) + len(valid_set),
        free=free_memory_bytes(device),
    )
    logger.info("estimated peak training memory %.2f GiB", need / (1 << 30))

    args = _training_arguments(
        TrainingArguments,
        output_dir=str(out / CHECKPOINTS_DIR),
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.eval_batch_size or cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        max_steps=cfg.max_steps or -1,
        num_train_epochs=cfg.epochs,
        learning_rate=cfg.learning_rate,
        weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup_ratio,  # a float in [0, 1) is a ratio of the total steps
        lr_scheduler_type=cfg.lr_scheduler,
        max_grad_norm=cfg.max_grad_norm,
        seed=cfg.seed,
        eval_strategy="steps",
        eval_steps=cfg.eval_steps,
        save_strategy="steps",
        save_steps=cfg.save_steps or cfg.eval_steps,
        save_total_limit=cfg.save_total_limit,
        load_best_model_at_end=True,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        logging_steps=cfg.logging_steps,
        include_num_input_tokens_seen="non_padding",
        remove_unused_columns=False,
        # Per-process mean loss, averaged by DDP. (transformers 5.24's token averaging
        # across processes reported train and eval losses scaled by the process count.)
        average_tokens_across_devices=False,
        ddp_find_unused_parameters=False,
        report_to="none",
        disable_tqdm=not progress,
        dataloader_num_workers=cfg.num_workers,
        use_cpu=device == "cpu",
        **precision,
        **({"activation_checkpointing": True} if cfg.gradient_checkpointing else {}),
    )
    interrupt = InterruptCallback()
    samples_per_step = cfg.batch_size * cfg.grad_accum * max(1, args.world_size)
    collator = Collator(
        loaded.tokenizer,
        loaded.family,
        Lengths(cfg.max_source_length, cfg.max_target_length, cfg.truncation_side),
        cfg.pad_to_multiple_of or (8 if device == "cuda" else None),
    )
    trainer = RecalignTrainer(
        model=loaded.model,
        args=args,
        train_dataset=train_set.dataset,
        eval_dataset=valid_set.dataset,
        data_collator=collator,
        processing_class=loaded.tokenizer,
        callbacks=[
            JsonlLogCallback(
                out / LOG_FILE, samples_per_step, resume_from.facts() if resume_from else None
            ),
            interrupt,
            OwnCheckpointsCallback(out / CHECKPOINTS_DIR),
            EvalTimeCallback(cfg.eval_fraction),
            *(callbacks or []),
        ],
        lengths=train_set.lengths,
        eval_lengths=valid_set.lengths,
        batching=cfg.batching,
        sampler_seed=cfg.seed,
    )
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    # Log records go to train_log.jsonl; stdout stays free of them (bar on stderr only).
    trainer.remove_callback(PrinterCallback)
    if progress:
        trainer.remove_callback(ProgressCallback)
        trainer.add_callback(BarProgressCallback(samples_per_step))
    main = trainer.is_world_process_zero()
    if main:
        dump_config(cfg, out / CONFIG_FILE)
    manifest_fields = {
        **manifest_fields,
        "config_hash": config_hash(cfg.model_dump(mode="json")),
        "world_size": args.world_size,
    }
    if main:
        _write_run_manifest(out, manifest_fields, status="running", steps=0, best=None)

    started = time.perf_counter()
    # Installed before train() (not only at its first callback), so a signal while the
    # Trainer loads the checkpoint or builds its optimizer also stops it cleanly.
    interrupt.install()
    try:
        trainer.train(resume_from_checkpoint=str(resume_from.checkpoint) if resume_from else None)
    except KeyboardInterrupt:
        # The second Ctrl-C or SIGTERM: no checkpoint of this step; the last one stands.
        if main:
            _write_run_manifest(
                out,
                manifest_fields,
                status="aborted",
                steps=trainer.state.global_step,
                best=_best_step(trainer.state),
            )
        raise
    finally:
        interrupt.restore()
    seconds = time.perf_counter() - started
    state = trainer.state
    best_step = _best_step(state)
    # A signal during the last step stops nothing: the run is done.
    interrupted = interrupt.interrupted and state.global_step < state.max_steps
    stopped_early = interrupted or state.global_step < state.max_steps
    if not stopped_early:
        # load_best_model_at_end has put the best weights in the model already.
        _save_final(trainer, loaded, cfg, out / MODEL_DIR)
    status = "interrupted" if interrupted else ("stopped" if stopped_early else "done")
    fit = dict(collator.fit)
    if fit.get("over_budget") or fit.get("cut_without_bounds"):
        logger.warning(
            "prompts over max_source_length %d in the batches of this run: %d kept whole "
            "(no history left to drop: the instruction and candidates alone are longer; "
            "raise max_source_length or lower the number of candidates), %d cut from one "
            "side (samples without history bounds)",
            cfg.max_source_length,
            fit.get("over_budget", 0),
            fit.get("cut_without_bounds", 0),
        )
    if main:
        _write_run_manifest(
            out,
            {**manifest_fields, "prompt_fit": fit},
            status=status,
            steps=state.global_step,
            best=best_step,
            best_loss=state.best_metric,
            seconds=seconds,
        )
    if interrupted:
        if main:
            append_record(
                out / LOG_FILE,
                {"event": "interrupt", "step": state.global_step, "signal": interrupt.signal_name},
            )
        logger.warning(
            "%s: stopped at step %d with a checkpoint; continue with --resume",
            interrupt.signal_name,
            state.global_step,
        )
    return RunResult(
        out,
        state.global_step,
        best_step,
        state.best_metric,
        interrupted,
        seconds,
        trainer.model,
        loaded.tokenizer,
        interrupt.signal_name if interrupted else None,
    )


def _training_arguments(cls: Any, **kwargs: Any) -> Any:
    """`TrainingArguments` written for transformers 5.24, mapped onto older releases.

    pyproject allows transformers >= 4.46; a few arguments were renamed since (a GPU
    image may ship an older one).
    """
    import dataclasses

    fields = {f.name for f in dataclasses.fields(cls)}
    if "warmup_ratio" in fields and isinstance(kwargs.get("warmup_steps"), float):
        kwargs["warmup_ratio"] = kwargs.pop("warmup_steps")
    if "activation_checkpointing" in kwargs and "activation_checkpointing" not in fields:
        kwargs["gradient_checkpointing"] = kwargs.pop("activation_checkpointing")
    for name in ("average_tokens_across_devices", "include_num_input_tokens_seen"):
        if name not in fields:
            kwargs.pop(name, None)
    return cls(**kwargs)


def _best_step(state: Any) -> int | None:
    path = state.best_model_checkpoint
    return int(str(path).rsplit("-", 1)[-1]) if path else None


def _save_final(trainer: Any, loaded: Any, cfg: TrainConfig, target: Path) -> None:
    """The best model into RUN_DIR/model: full weights, an adapter, or a merged model."""
    if not trainer.is_world_process_zero():
        return
    # Written beside, then renamed: a run killed while saving never leaves a half model
    # directory where evaluation and serving look.
    partial = target.with_name(f".{target.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    model = trainer.model
    if cfg.lora.enabled and cfg.lora.save == "merged":
        model = model.merge_and_unload()
    model.save_pretrained(partial)
    loaded.tokenizer.save_pretrained(partial)
    if target.exists():
        shutil.rmtree(target)
    partial.rename(target)


def _write_run_manifest(
    out: Path,
    fields: dict,
    *,
    status: str,
    steps: int,
    best: int | None,
    best_loss: float | None = None,
    seconds: float | None = None,
) -> None:
    from recalign.artifacts import RunManifest, seal

    seal(
        out,
        RunManifest(
            **fields,
            status=status,
            steps_done=steps,
            best_step=best,
            best_eval_loss=best_loss,
            train_seconds=seconds,
        ),
    )
