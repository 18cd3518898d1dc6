"""`recalign evaluate` on any model: zero-shot model directories, tiny presets, pipeline
directories, and runs read from other working directories."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recalign.artifacts import ModelManifest, PromptSettings, seal
from recalign.cli.evaluate import app
from recalign.errors import ConfigError, IncompatibleArtifactError, RecalignError
from recalign.evaluation.llm import EvalOptions, evaluate, evaluate_model, evaluate_zero_shot
from recalign.evaluation.outputs import read_predictions
from recalign.evaluation.targets import describe_model, model_label, model_name
from recalign.validation import validate
from tests.factories import fake_pipeline, fake_samples, tiny_llm_run
from tests.inference.conftest import catalogue, write_fixture_data
from tests.tiny import TINY_OVERRIDES

pytest.importorskip("torch")

SAMPLED = EvalOptions(protocol="sampled", num_negatives=9, max_users=3)
# A chat template in the shape of SmolLM2's (system turn, user turn, assistant prompt).
CHAT_TEMPLATE = (
    "{% for m in messages %}system: be brief\nuser: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:\n{% endif %}"
)


@pytest.fixture(autouse=True)
def _trie_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RECALIGN_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def texts() -> list[str]:
    return catalogue(120)


@pytest.fixture
def data_dir(tmp_path, texts) -> Path:
    return write_fixture_data(tmp_path / "data", texts[:20])


def save_model(out: Path, data_dir: Path, family: str, *, chat: bool = False) -> Path:
    """A tiny random-init model saved as a plain Hugging Face directory."""
    import torch

    from recalign.data import load_prepared
    from recalign.models.loading import build_tiny

    torch.manual_seed(0)
    preset = "tiny-t5" if family == "seq2seq" else "tiny-causal"
    loaded = build_tiny(
        preset, dataset=load_prepared(data_dir), vocab_size=300, overrides=TINY_OVERRIDES[family]
    )
    if chat:
        loaded.tokenizer.chat_template = CHAT_TEMPLATE
    loaded.model.save_pretrained(out)
    loaded.tokenizer.save_pretrained(out)
    return out


def make_pipeline(root: Path, texts: list[str], **prompt) -> Path:
    """A `recalign run` directory: data/, samples/, train/ (its inputs recorded as
    ../samples and ../data)."""
    data = write_fixture_data(root / "data", texts[:20])
    tiny_llm_run(root / "train", data, samples_dir=root / "samples", **prompt)
    return fake_pipeline(root, name="test")


# --- zero-shot -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("family", "chat"), [("seq2seq", False), ("causal", False), ("causal", True)]
)
def test_zero_shot_model_directory(family, chat, data_dir, tmp_path, caplog):
    model = save_model(tmp_path / "model", data_dir, family, chat=chat)
    with caplog.at_level(logging.WARNING):
        metrics = evaluate_model(model, data_dir, tmp_path / "ev", SAMPLED)
    assert not caplog.records
    predictions = read_predictions(tmp_path / "ev")
    assert metrics["users"] == len(predictions) == 3
    for record in predictions:
        assert len(record["ranked"]) == 10 and record["target"] in record["ranked"]
    assert metrics["model"] == "model zero-shot"
    info = metrics["model_info"]
    assert info["adaptation"] == "zero-shot" and info["family"] == family
    assert info["source"] == str(model) and not info["random_init"]
    assert metrics["prompt"]["source"] == "defaults"
    assert metrics["prompt"]["max_history"] == PromptSettings().max_history
    stored = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert stored["model_info"] == info


def test_zero_shot_retrieval_of_a_chat_model(data_dir, tmp_path):
    model = save_model(tmp_path / "chat", data_dir, "causal", chat=True)
    evaluate_model(model, data_dir, tmp_path / "ev", EvalOptions(k=5, num_beams=5))
    predictions = read_predictions(tmp_path / "ev")
    assert len(predictions) == 6
    assert all(len(set(p["ranked"])) == 5 for p in predictions)


def test_cli_zero_shot_with_prompt_flags(tmp_path, texts):
    """The shape of `recalign evaluate run MODEL --data D --protocol sampled --max-users 3`:
    99 negatives need a catalogue of more than 100 items."""
    data = write_fixture_data(tmp_path / "big", texts)
    model = save_model(tmp_path / "model", data, "seq2seq")
    args = ["run", str(model), "--data", str(data), "--protocol", "sampled", "--max-users", "3"]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "e")])
    assert result.exit_code == 0, result.output
    assert len(read_predictions(tmp_path / "e")) == 3
    assert all(len(p["ranked"]) == 100 for p in read_predictions(tmp_path / "e"))
    flags = ["--max-history", "2", "--item-repr", "id", "--out", str(tmp_path / "f")]
    result = CliRunner().invoke(app, [*args, *flags])
    assert result.exit_code == 0, result.output
    prompt = json.loads((tmp_path / "f" / "metrics.json").read_text())["prompt"]
    assert prompt["max_history"] == 2 and prompt["item_repr"] == "id"
    assert prompt["source"] == "defaults + flags"


def test_cli_zero_shot_with_the_prompts_of_a_samples_directory(data_dir, tmp_path):
    model = save_model(tmp_path / "model", data_dir, "causal")
    samples = fake_samples(
        data_dir, tmp_path / "samples", item_repr="id+title", max_history=3, id_seed=5
    )
    result = CliRunner().invoke(
        app,
        [
            *(str(model), "--data", str(data_dir), "--samples", str(samples)),
            *("--protocol", "sampled", "--num-negatives", "5", "--out", str(tmp_path / "e")),
        ],
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert metrics["prompt"]["item_repr"] == "id+title" and metrics["prompt"]["id_seed"] == 5
    assert metrics["options"]["num_negatives"] == 5


def test_tiny_preset_is_a_seeded_random_floor(data_dir, tmp_path):
    tokenizer = save_model(tmp_path / "tok", data_dir, "seq2seq")
    options = EvalOptions(k=5, num_beams=5, max_users=4)
    first = evaluate_model("tiny-t5", data_dir, tmp_path / "a", options, tokenizer=tokenizer)
    evaluate_model("tiny-t5", data_dir, tmp_path / "b", options, tokenizer=tokenizer)
    assert first["model"] == "tiny-t5 zero-shot (random init)"
    assert first["model_info"]["random_init"] and first["model_info"]["model_preset"] == "tiny-t5"
    assert read_predictions(tmp_path / "a") == read_predictions(tmp_path / "b")


def test_zero_shot_row_of_a_run_scores_the_same_users(tmp_path, texts):
    pipeline = make_pipeline(tmp_path / "pipe", texts)
    options = EvalOptions(protocol="sampled", num_negatives=9, max_users=4)
    tuned = evaluate(pipeline, None, tmp_path / "tuned", options)
    base = evaluate_zero_shot(pipeline, None, tmp_path / "base", options)
    assert tuned["model"] == "tiny-t5 trained from scratch (rec-only)"
    assert base["model"] == "tiny-t5 zero-shot (random init)"
    assert base["model_info"]["run_dir"] == str(pipeline / "train")
    # The run's prompts; only the budget is the fine-tuned model's alone (zero-shot
    # prompts are not fitted).
    assert tuned["prompt"]["max_source_length"] == 256
    assert base["prompt"] == {**tuned["prompt"], "max_source_length": None}
    tuned_rows = read_predictions(tmp_path / "tuned")
    base_rows = read_predictions(tmp_path / "base")
    assert [r["user_id"] for r in tuned_rows] == [r["user_id"] for r in base_rows]
    assert [sorted(r["ranked"]) for r in tuned_rows] == [sorted(r["ranked"]) for r in base_rows]


# --- pipeline directories and runs from anywhere ---------------------------------------
def test_pipeline_directory_from_another_working_directory(tmp_path, texts, monkeypatch, caplog):
    make_pipeline(tmp_path / "runs" / "demo", texts)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    with caplog.at_level(logging.WARNING):
        result = CliRunner().invoke(
            app,
            [
                *("../runs/demo", "--protocol", "retrieval", "--max-users", "5"),
                *("--k", "5", "--beams", "5", "--out", "E"),
            ],
        )
    assert result.exit_code == 0, result.output
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    metrics = json.loads((elsewhere / "E" / "metrics.json").read_text())
    assert metrics["users"] == 5 and metrics["model_info"]["adaptation"] == "fine-tuned"
    assert Path(metrics["run_dir"]).name == "train"


def test_a_moved_pipeline_keeps_its_catalogue_check(tmp_path, texts, caplog):
    old = make_pipeline(tmp_path / "old", texts)
    new = tmp_path / "moved" / "pipe"
    shutil.copytree(old, new)
    shutil.rmtree(old)
    with caplog.at_level(logging.WARNING):
        evaluate(new, None, tmp_path / "ev", EvalOptions(k=5, num_beams=5))
    assert not caplog.records
    changed = list(texts[:20])
    changed[3] = "a completely different product"
    other = write_fixture_data(tmp_path / "other", changed)
    # The item-level message needs the run's samples: they were found in the moved tree.
    with pytest.raises(IncompatibleArtifactError, match=r"item 4 is 'a completely different"):
        evaluate(new, other, tmp_path / "ev2", EvalOptions(k=5, num_beams=5))


def test_serving_reads_the_prompts_the_run_recorded(tmp_path, texts, monkeypatch, caplog):
    from recalign.serving.recommender import Recommender

    pipeline = make_pipeline(tmp_path / "runs" / "demo", texts, max_history=3)
    shutil.rmtree(pipeline / "samples")  # the run's own record is enough
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.WARNING):
        rec = Recommender.load("runs/demo")
    assert not caplog.records
    assert rec.backend.max_history == 3


# --- refusals --------------------------------------------------------------------------
def test_refusals(tmp_path, texts, data_dir):
    pipeline = make_pipeline(tmp_path / "pipe", texts)
    model = save_model(tmp_path / "model", data_dir, "seq2seq")
    with pytest.raises(ConfigError, match="prompt settings"):
        evaluate(pipeline, None, tmp_path / "e", prompt=PromptSettings())
    with pytest.raises(ConfigError, match="needs a prepared dataset"):
        evaluate(model, None, tmp_path / "e")
    with pytest.raises(RecalignError, match="holds a 'dataset' artefact"):
        evaluate(data_dir, data_dir, tmp_path / "e")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RecalignError, match="neither a recalign directory"):
        evaluate(tmp_path / "empty", data_dir, tmp_path / "e")
    shutil.rmtree(pipeline / "train")
    with pytest.raises(RecalignError, match="without a finished training run"):
        evaluate(pipeline, None, tmp_path / "e")
    with pytest.raises(ConfigError, match="picks a checkpoint"):
        evaluate_model(model, data_dir, tmp_path / "e", EvalOptions(which="last"))
    result = CliRunner().invoke(
        app, [str(model), "--data", str(data_dir), "--item-repr", "emoji", "--out", "x"]
    )
    assert result.exit_code != 0 and "unknown item representation" in str(result.exception)


# --- names -----------------------------------------------------------------------------
def test_labels_say_what_was_evaluated(tmp_path):
    imported = tmp_path / "smollm2-135m"
    imported.mkdir()
    seal(imported, ModelManifest(source={"gguf": "/x/SmolLM2-135M-Instruct.Q4_1.gguf"}))
    assert model_name(str(imported)) == "SmolLM2-135M-Instruct.Q4_1"
    assert model_name("HuggingFaceTB/SmolLM2-135M") == "HuggingFaceTB/SmolLM2-135M"
    assert model_name("./models/flan.gguf") == "flan"
    assert model_label(describe_model(str(imported), "causal")) == (
        "SmolLM2-135M-Instruct.Q4_1 zero-shot"
    )
    tuned = {"name": "flan-t5-base", "adaptation": "fine-tuned", "preset": "rec+mim", "lora": True}
    assert model_label(tuned) == "flan-t5-base fine-tuned (rec+mim, LoRA)"
    assert model_label({**tuned, "preset": None, "tasks": ["retrieval", "mim"], "lora": False}) == (
        "flan-t5-base fine-tuned (retrieval+mim)"
    )
    scratch = {"name": "tiny-t5", "adaptation": "fine-tuned", "model_preset": "tiny-t5"}
    assert model_label({**scratch, "preset": "paper"}) == "tiny-t5 trained from scratch (paper)"


def test_zero_shot_prompts_fit_a_given_budget(data_dir, tmp_path, monkeypatch):
    """`max_source_length` fits a zero-shot model's prompts (a run uses its training
    budget); without it, a zero-shot model sees its prompts whole."""
    from recalign.models import tokenization

    seen = []
    real = tokenization.fit_prompts

    def spy(tokenizer, family, texts, bounds, limit, **kwargs):
        fitted = real(tokenizer, family, texts, bounds, limit, **kwargs)
        seen.append((limit, fitted))
        return fitted

    monkeypatch.setattr(tokenization, "fit_prompts", spy)
    model = save_model(tmp_path / "model", data_dir, "seq2seq")
    evaluate_model(model, data_dir, tmp_path / "whole", SAMPLED)
    assert [limit for limit, _ in seen] == [None]
    whole = max(len(ids) for ids in seen[0][1].ids)
    budget = whole - 4
    options = EvalOptions(**{**SAMPLED.__dict__, "max_source_length": budget})
    evaluate_model(model, data_dir, tmp_path / "fitted", options)
    limit, fitted = seen[-1]
    assert limit == budget
    assert max(len(ids) for ids in fitted.ids) <= budget
    assert fitted.summary()["shortened"] >= 1
    with pytest.raises(ConfigError, match="max_source_length: expected >= 8, got 4"):
        validate(EvalOptions, {"max_source_length": 4}, "options")
