"""Resolve a `--model` spec to a model, its tokenizer and its family.

Specs: `tiny-t5` / `tiny-causal` (built from a config, nothing downloaded), a local
model directory (full weights or a LoRA adapter), a `.gguf` file, or a Hugging Face hub
name — the only case that may download, and only when the user named it.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from recalign.errors import ConfigError, RecalignError

logger = logging.getLogger(__name__)

Family = Literal["seq2seq", "causal"]
ADAPTER_CONFIG = "adapter_config.json"


@dataclass
class LoadedModel:
    """A model ready for training or inference, with what is needed to rebuild it."""

    model: Any
    tokenizer: Any
    family: Family
    spec: dict[str, Any] = field(default_factory=dict)


def family_of_config(config: Any) -> Family:
    """seq2seq for encoder-decoder configs (T5, BART), causal otherwise."""
    return "seq2seq" if getattr(config, "is_encoder_decoder", False) else "causal"


def _torch_dtype(dtype: str | None) -> Any:
    if dtype in (None, "auto"):
        return None
    import torch

    table = {
        "fp32": torch.float32,
        "float32": torch.float32,
        "bf16": torch.bfloat16,
        "bfloat16": torch.bfloat16,
        "fp16": torch.float16,
        "float16": torch.float16,
    }
    if dtype not in table:
        raise ConfigError(f"unknown dtype {dtype!r}; expected one of {sorted(table)}")
    return table[dtype]


def _template_texts() -> list[str]:
    """The raw text of the packaged prompt templates, so the tokenizer knows their words."""
    try:
        folder = resources.files("recalign") / "templates"
        return [p.read_text() for p in folder.iterdir() if p.name.endswith(".yaml")]
    except (FileNotFoundError, NotADirectoryError, ModuleNotFoundError):
        return []


def tokenizer_corpus(dataset: Any = None, texts: Iterable[str] | None = None) -> list[str]:
    """Text a tiny tokenizer is trained on: item texts, templates, and any given texts."""
    from recalign.models.tokenization import CAUSAL_SEPARATOR

    corpus: list[str] = [CAUSAL_SEPARATOR, *_template_texts()]
    if dataset is not None:
        corpus.extend(str(t) for t in dataset.item_texts[1:] if t)
    if texts is not None:
        corpus.extend(texts)
    return corpus


def _load_tokenizer(path: str | Path) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError) as error:
        raise RecalignError(f"cannot load a tokenizer from {path}: {error}") from error


def load_tokenizer(spec: str | Path) -> tuple[Any, str]:
    """The tokenizer of a run directory, a model directory or a hub name, and its family.

    A run directory has the tokenizer it trained with (RUN_DIR/tokenizer) and its family
    in the manifest; a model directory or hub name has a config that tells the family.
    """
    from recalign.artifacts import RunDir, artifact_kind

    path = Path(spec)
    if path.is_dir() and artifact_kind(path) == "run":
        run = RunDir.open(path)
        return _load_tokenizer(run.tokenizer), run.manifest.family
    if str(spec) in ("tiny-t5", "tiny-causal"):
        raise RecalignError(
            f"{spec} trains its tokenizer when it is trained: pass that run's directory"
        )
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(str(spec))
    except (OSError, ValueError) as error:
        raise RecalignError(f"cannot read a model config from {spec}: {error}") from error
    return _load_tokenizer(spec), family_of_config(config)


def build_tiny(
    preset: str,
    *,
    dataset: Any = None,
    texts: Iterable[str] | None = None,
    tokenizer_path: str | Path | None = None,
    vocab_size: int = 8000,
    overrides: Mapping[str, Any] | None = None,
) -> LoadedModel:
    """`tiny-t5` or `tiny-causal`: a tokenizer (given or trained) and a model from a config."""
    from recalign.models.tiny import build_tiny_causal, build_tiny_t5, train_tokenizer

    family: Family = "seq2seq" if preset == "tiny-t5" else "causal"
    if tokenizer_path is not None:
        tokenizer = _load_tokenizer(tokenizer_path)
    else:
        if dataset is None and texts is None:
            raise ConfigError(
                f"{preset} needs text to train its tokenizer: pass the prepared dataset "
                "(--data) or a tokenizer path (--tokenizer)"
            )
        corpus = tokenizer_corpus(dataset, texts)
        tokenizer = train_tokenizer(corpus, vocab_size=vocab_size, family=family)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    build = build_tiny_t5 if family == "seq2seq" else build_tiny_causal
    model = build(tokenizer, **dict(overrides or {}))
    spec = {
        "source": preset,
        "preset": preset,
        "tokenizer_path": None if tokenizer_path is None else str(tokenizer_path),
        "vocab_size": len(tokenizer),
        "overrides": dict(overrides or {}),
    }
    return LoadedModel(model=model, tokenizer=tokenizer, family=family, spec=spec)


def _auto_class(family: Family) -> Any:
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    return AutoModelForSeq2SeqLM if family == "seq2seq" else AutoModelForCausalLM


def _load_pretrained(
    source: str,
    *,
    local_only: bool,
    tokenizer_path: str | Path | None,
    dtype: Any,
    gguf_file: str | None = None,
) -> LoadedModel:
    from transformers import AutoConfig, AutoTokenizer

    kwargs: dict[str, Any] = {"local_files_only": local_only}
    if gguf_file is not None:
        kwargs["gguf_file"] = gguf_file
    config = AutoConfig.from_pretrained(source, **kwargs)
    family = family_of_config(config)
    model = _auto_class(family).from_pretrained(source, dtype=dtype, **kwargs)
    tokenizer = (
        _load_tokenizer(tokenizer_path)
        if tokenizer_path is not None
        else AutoTokenizer.from_pretrained(source, **kwargs)
    )
    if tokenizer.pad_token_id is None:
        # Causal tokenizers often lack a pad token; padding positions are masked anyway.
        tokenizer.pad_token = tokenizer.eos_token
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        family=family,
        spec={"source": source, "gguf_file": gguf_file},
    )


@contextmanager
def peft_checkpointing_warning_silenced() -> Iterator[None]:
    """Around making a `PeftModel`: hide one FutureWarning that is about peft, not us.

    peft (0.21) reads `model.is_gradient_checkpointing`, which transformers 5 renamed to
    `is_activation_checkpointing` and kept as an alias that warns on every read. The value
    is the same, so the warning (one per LoRA run and per adapter reload) is noise until
    peft reads the new name; any other warning still shows.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning
        )
        yield


def _load_adapter(path: Path, *, dtype: Any, base: str | Path | None = None) -> LoadedModel:
    """A LoRA adapter directory: the base from `base` (or the adapter config), then peft."""
    from peft import PeftModel

    from recalign.fileio import read_json_object

    config = read_json_object(path / ADAPTER_CONFIG)
    base_source = str(base) if base is not None else config.get("base_model_name_or_path")
    if not base_source:
        raise RecalignError(f"{path} is a LoRA adapter without a known base model")
    base_loaded = load_model(base_source, dtype=dtype, tokenizer_path=path)
    vocabulary = len(base_loaded.tokenizer)
    if vocabulary > base_loaded.model.get_input_embeddings().num_embeddings:
        # Tokens the run added (semantic-id codes) are missing from a pretrained base; the
        # adapter holds their trained rows (peft trainable tokens), which replace these.
        base_loaded.model.resize_token_embeddings(vocabulary, mean_resizing=False)
    with peft_checkpointing_warning_silenced():
        model = PeftModel.from_pretrained(base_loaded.model, str(path))
    spec = {"source": str(path), "adapter": True, "base": base_source}
    return LoadedModel(
        model=model, tokenizer=base_loaded.tokenizer, family=base_loaded.family, spec=spec
    )


def _hub_error(spec: str, error: Exception) -> RecalignError:
    return RecalignError(
        f"model {spec!r} is neither a preset (tiny-t5, tiny-causal) nor a local path, and it "
        f"cannot be downloaded here ({type(error).__name__}: {str(error).splitlines()[0][:200]}). "
        "Download it on a machine with internet (e.g. `huggingface-cli download "
        f"{spec} --local-dir DIR`), copy DIR here and pass `--model DIR`; a GGUF file can be "
        "converted with `recalign models import FILE.gguf --out DIR`."
    )


def _hub_reachable(timeout: float = 3.0) -> bool:
    """A quick probe, so an offline machine fails in seconds instead of after retries."""
    import socket

    from huggingface_hub import constants

    host = constants.ENDPOINT.split("://", 1)[-1].split("/", 1)[0]
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError:
        return False
    return True


def _load_from_hub(spec: str, *, tokenizer_path: str | Path | None, dtype: Any) -> LoadedModel:
    """A hub name: the local HF cache first, then a download (only if the hub is reachable)."""
    try:
        return _load_pretrained(spec, local_only=True, tokenizer_path=tokenizer_path, dtype=dtype)
    except (OSError, ValueError) as error:
        cached_error: Exception = error
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    if offline or not _hub_reachable():
        raise _hub_error(spec, cached_error)
    try:
        return _load_pretrained(spec, local_only=False, tokenizer_path=tokenizer_path, dtype=dtype)
    except (OSError, ValueError, ConnectionError) as error:
        raise _hub_error(spec, error) from error


def _verify_if_imported(path: Path) -> None:
    """A model directory `recalign models import` wrote is loaded only if it is intact."""
    from recalign.artifacts import ModelDir, artifact_kind

    if artifact_kind(path) == "model":
        ModelDir.open(path)


def load_model(
    spec: str,
    *,
    dataset: Any = None,
    tokenizer_path: str | Path | None = None,
    device: str | None = None,
    dtype: str | None = None,
    texts: Iterable[str] | None = None,
    vocab_size: int = 8000,
    overrides: Mapping[str, Any] | None = None,
) -> LoadedModel:
    """Load or build the model named by `spec` (see the module docstring).

    `dataset`, `texts`, `vocab_size` and `overrides` only matter for the tiny presets:
    the tokenizer is trained on the dataset's item texts, the templates and `texts`;
    `overrides` change the model config (e.g. `{"d_model": 32}`).
    """
    from recalign.models import TINY_PRESETS

    torch_dtype = _torch_dtype(dtype)
    if spec in TINY_PRESETS:
        loaded = build_tiny(
            spec,
            dataset=dataset,
            texts=texts,
            tokenizer_path=tokenizer_path,
            vocab_size=vocab_size,
            overrides=overrides,
        )
    else:
        path = Path(spec).expanduser()
        if path.is_file() and path.suffix == ".gguf":
            loaded = _load_pretrained(
                str(path.parent),
                local_only=True,
                tokenizer_path=tokenizer_path,
                dtype=torch_dtype,
                gguf_file=path.name,
            )
        elif path.is_dir() and (path / ADAPTER_CONFIG).is_file():
            loaded = _load_adapter(path, dtype=torch_dtype)
        elif path.is_dir():
            _verify_if_imported(path)
            try:
                loaded = _load_pretrained(
                    str(path), local_only=True, tokenizer_path=tokenizer_path, dtype=torch_dtype
                )
            except (OSError, ValueError) as error:
                raise RecalignError(f"cannot load a model from {path}: {error}") from error
        elif spec.startswith((".", "/", "~")) or spec.endswith(".gguf") or spec.count("/") > 1:
            raise RecalignError(f"model path {spec} does not exist")
        else:
            loaded = _load_from_hub(spec, tokenizer_path=tokenizer_path, dtype=torch_dtype)
        if torch_dtype is not None:
            loaded.model.to(torch_dtype)
    if device is not None:
        loaded.model.to(device)
    logger.info("loaded %s (%s)", spec, loaded.family)
    return loaded


def load_run_model(
    run_dir: str | Path, *, which: str = "best", device: str | None = None
) -> LoadedModel:
    """The trained model of a run directory (`recalign.artifacts.RunDir`, verified).

    `which`: "best" (RUN_DIR/model), "last" (the latest checkpoint) or a checkpoint name
    ("checkpoint-N", "step-N" or "N"). A LoRA adapter is put on its base model, resolved
    from the run manifest (RUN_DIR/base for the tiny presets, else the base spec).
    """
    from recalign.artifacts import RunDir
    from recalign.artifacts.checkpoints import verify_model_files

    run = RunDir.open(run_dir)
    target = run.weights(which)
    verify_model_files(target)  # a damaged weight file is named, not a loader's traceback
    if (target / ADAPTER_CONFIG).is_file():
        base = (
            run.base
            if run.base.is_dir()
            else recorded_model_source(run.path, run.manifest.model["source"])
        )
        loaded = _load_adapter(target, dtype=None, base=base)
    else:
        loaded = _load_pretrained(str(target), local_only=True, tokenizer_path=None, dtype=None)
    loaded.spec = {**run.manifest.model, "run_dir": str(run.path), "weights": str(target)}
    if device is not None:
        loaded.model.to(device)
    loaded.model.eval()
    return loaded


def recorded_model_source(run_dir: str | Path, source: str) -> str:
    """The model (or tokenizer) a run recorded as `source`, from any working directory.

    Training records a path as the user typed it, relative to the working directory of
    the time: look for it the way `recalign.artifacts.find_recorded` looks for a run's
    inputs. A preset, a hub name or a path found nowhere is returned as it is.
    """
    from recalign.artifacts import find_recorded
    from recalign.models import TINY_PRESETS

    if source in TINY_PRESETS:
        return source

    def is_model(candidate: Path) -> bool:
        if candidate.is_file():
            return candidate.suffix == ".gguf"
        return any(
            (candidate / name).is_file()
            for name in ("config.json", ADAPTER_CONFIG, "tokenizer.json", "tokenizer_config.json")
        )

    found = find_recorded(source, run_dir, is_model)
    return source if found is None else str(found)
