"""The training configuration: typed, validated, loaded from YAML, written into RUN_DIR.

Every key has a comment saying why its default is what it is. Unknown keys are an
error that names the key (a typo must not silently train with a default).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from recalign.validation import read_yaml, validate

# LoRA targets per architecture (`config.model_type`): the attention projections, as in
# the LoRA paper and peft's own defaults; ones not listed fall back to peft's table.
LORA_TARGETS: dict[str, list[str]] = {
    "t5": ["q", "v"],
    "mt5": ["q", "v"],
    "bart": ["q_proj", "v_proj"],
    "llama": ["q_proj", "v_proj"],
    "qwen2": ["q_proj", "v_proj"],
    "qwen3": ["q_proj", "v_proj"],
    "mistral": ["q_proj", "v_proj"],
    "gemma": ["q_proj", "v_proj"],
    "gemma2": ["q_proj", "v_proj"],
    "gemma3_text": ["q_proj", "v_proj"],
    "phi3": ["qkv_proj"],
    "gpt2": ["c_attn"],
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class LoraConfig(_Strict):
    # full fine-tuning by default; `--lora` turns this on
    enabled: bool = Field(False, description="LoRA or full fine-tuning.")
    r: int = Field(8, ge=1)  # rank 8 is the paper-era default and enough for task adaptation
    alpha: int = Field(16, ge=1)  # alpha = 2r keeps the update scale ~1 as r changes
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: list[str] | None = None  # None: LORA_TARGETS by architecture
    save: Literal["adapter", "merged"] = "adapter"  # adapter: MBs instead of the whole model


class TrainConfig(_Strict):
    # --- length of training ---
    max_steps: int | None = Field(None, ge=1, description="Stop after N steps (wins over epochs).")
    epochs: float = Field(1.0, gt=0, description="Number of epochs.")
    # --- batches ---
    batch_size: int = Field(16, ge=1)  # per device
    eval_batch_size: int | None = Field(None, ge=1)  # None: batch_size
    grad_accum: int = Field(1, ge=1)  # effective batch = batch_size * grad_accum * processes
    # length_grouped: batches of similar length, so dynamic padding wastes little compute;
    # random: plain shuffling, for comparison.
    batching: Literal["length_grouped", "random"] = "length_grouped"
    # Pad each batch up to a multiple of this: on GPUs, tensor-core-friendly shapes and
    # far fewer distinct shapes (each new one costs kernel selection and loading).
    # None: 8 on CUDA, no rounding on CPU.
    pad_to_multiple_of: int | None = Field(None, ge=1)
    # Where the lengths for length-grouped batches come from: `bytes` estimates them from
    # the texts' byte lengths (a fit on 2,000 tokenised samples, no pass over the data:
    # seconds, ~6% padding on ML-100K); `tokens` tokenises every sample once up front for
    # exact lengths (minutes, ~1% padding): worth it for runs of hours.
    length_source: Literal["bytes", "tokens"] = "bytes"
    # Prompt tokens: a longer prompt loses whole history items, oldest first (never its
    # instruction, candidates or chat frame; `recalign samples inspect` shows how many).
    max_source_length: int = Field(256, ge=8)
    max_target_length: int = Field(64, ge=2)  # answer tokens (incl. EOS)
    # Samples without history bounds (made by an older recalign) are cut from this side
    # instead: the start of a history prompt holds the oldest items.
    truncation_side: Literal["left", "right"] = "left"
    # --- optimisation ---
    learning_rate: float = Field(1e-3, gt=0)  # T5 fine-tuning likes 1e-3 (AdamW); LLMs ~1e-4
    weight_decay: float = Field(0.0, ge=0)
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    max_grad_norm: float = Field(1.0, gt=0)
    # auto: bf16 on GPUs that support it, else fp16 on CUDA, fp32 on CPU.
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    seed: int = 42
    # --- evaluation, checkpoints, logs ---
    eval_steps: int = Field(200, ge=1)  # validation loss every N steps (also a checkpoint)
    save_steps: int | None = Field(None, ge=1)  # None: eval_steps (best-model needs both equal)
    save_total_limit: int | None = Field(3, ge=1)  # the best checkpoint is always kept
    logging_steps: int = Field(10, ge=1)
    # A seeded validation subset. auto: sized so validation takes about `eval_fraction` of
    # the training time (`auto_eval_samples`); null: the whole split.
    max_eval_samples: int | Literal["auto"] | None = Field(
        "auto", description="Validate on a seeded subset of N samples."
    )
    eval_fraction: float = Field(0.1, gt=0, le=1)  # the time share `auto` aims at
    max_train_samples: int | None = Field(  # quick runs, benches
        None, ge=1, description="Train on a seeded subset of N samples."
    )
    tasks: list[str] | None = None  # train on these tasks only (None: every task)
    # --- model ---
    vocab_size: int = Field(8000, ge=100)  # tiny presets: trained tokenizer size
    model_overrides: dict[str, Any] = Field(default_factory=dict)  # tiny presets: config keys
    gradient_checkpointing: bool = False  # trade compute for activation memory
    # --- memory guard ---
    # Refuse to start when the estimated peak memory (activations, weights, optimizer,
    # data) exceeds this fraction of the device's memory; set to null to skip the check.
    memory_fraction: float | None = Field(0.8, gt=0)
    # Dataloader worker processes. 0: batches are tokenised in the training process
    # (a few ms a batch); more moves that into workers.
    num_workers: int = Field(0, ge=0)
    lora: LoraConfig = Field(default_factory=LoraConfig)

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if isinstance(self.max_eval_samples, int) and self.max_eval_samples < 1:
            raise ValueError("max_eval_samples must be >= 1, 'auto' or null")
        save = self.save_steps or self.eval_steps
        if save % self.eval_steps:
            raise ValueError(
                f"save_steps ({save}) must be a multiple of eval_steps ({self.eval_steps}) "
                "so the best checkpoint by validation loss is on disk"
            )
        return self


# Samples/s of validation over samples/s of training: forward only against forward,
# backward and optimizer step. Measured on CPU (bench/RESULTS.md, "Streaming training
# data"): tiny-t5 3.3, tiny-causal 2.7 (LoRA 2.4), SmolLM2-135M 2.6-3.1 (LoRA 2.5-3.0).
# LoRA's cheaper backward gives the lowest ratios; 2 sits below all of them, so `auto`
# keeps validation within its share for full and LoRA runs of any size.
EVAL_SPEEDUP = 2.0
MIN_EVAL_SAMPLES = 128  # fewer make the validation loss too noisy to pick a best step


def auto_eval_samples(config: TrainConfig, processes: int = 1) -> int:
    """Validation samples that take ~`eval_fraction` of the time of `eval_steps` steps.

    One step trains `batch_size * grad_accum * processes` samples; validating a sample
    costs about 1 / EVAL_SPEEDUP of training one, whatever the model's size, so the
    answer depends on the schedule, not on the model: 640 for the defaults.
    """
    per_step = config.batch_size * config.grad_accum * processes
    budget = config.eval_fraction * EVAL_SPEEDUP * config.eval_steps * per_step
    return max(MIN_EVAL_SAMPLES, int(budget))


def eval_sample_limit(config: TrainConfig, processes: int = 1) -> int | None:
    """`max_eval_samples` resolved: a number, or None for the whole validation split."""
    if config.max_eval_samples == "auto":
        return auto_eval_samples(config, processes)
    return config.max_eval_samples


def make_config(values: dict[str, Any] | None = None, *, source: str = "(values)") -> TrainConfig:
    """Validate a dict into a `TrainConfig`, with an error naming each bad key."""
    return validate(TrainConfig, values, f"training config {source}")


def load_config(path: str | Path | None, **overrides: Any) -> TrainConfig:
    """Read a YAML config (or the defaults) and apply non-None overrides on top."""
    values = read_yaml(path, what="training config") if path is not None else {}
    for key, value in overrides.items():
        if value is None:
            continue
        if key == "lora":
            lora = values.get("lora")
            values["lora"] = {**(lora if isinstance(lora, dict) else {}), "enabled": bool(value)}
        else:
            values[key] = value
    return make_config(values, source=str(path) if path else "(defaults)")


def dump_config(config: TrainConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
