"""A tiny-t5 run on semantic-id samples, and the cold-start protocol end to end."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from recalign.cli import app
from recalign.data.cold import choose_cold, hold_out_cold
from recalign.data.store import load_prepared
from recalign.errors import ConfigError
from recalign.evaluation.outputs import compute_metrics
from recalign.samples import semantic
from recalign.samples.semantic import CODE_TOKEN, hashing_embedder
from recalign.training.config import make_config
from recalign.training.run import train
from tests.tiny import TINY_OVERRIDES

RUNNER = CliRunner()


def _invoke(*args: str) -> str:
    result = RUNNER.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def _train(data, samples, out):
    config = make_config(
        {
            "max_steps": 4,
            "batch_size": 8,
            "eval_steps": 4,
            "max_eval_samples": 16,
            "vocab_size": 300,
            "model_overrides": TINY_OVERRIDES["seq2seq"],
        }
    )
    return train(data, samples, "tiny-t5", out, config=config, progress=False)


@pytest.fixture
def hashing_default(monkeypatch):
    monkeypatch.setitem(semantic.EMBEDDERS, semantic.MINILM, lambda cfg: hashing_embedder(32))


def test_tiny_t5_retrieves_catalogue_items_through_codes(tmp_path, hashing_default):
    data, samples, run = tmp_path / "shop", tmp_path / "samples", tmp_path / "trained"
    _invoke("data", "prepare", "synthetic", "--out", data, "--num-users", "40", "--num-items", "60")
    _invoke("samples", "generate", data, "--out", samples, "--item-repr", "semantic")
    result = _train(data, samples, run)
    tokenizer = result.tokenizer
    codes = pl.read_parquet(samples / semantic.SEMANTIC_IDS_FILE).get_column("code").to_list()
    # every code token is one added token, so a code is at most levels + 1 ids (+ EOS)
    for code in codes:
        ids = tokenizer(code, add_special_tokens=False)["input_ids"]
        assert len(ids) == len(CODE_TOKEN.findall(code)) <= 6
    assert result.model.get_input_embeddings().num_embeddings == len(tokenizer)

    out = tmp_path / "eval"
    _invoke("evaluate", run, "--data", data, "--protocol", "retrieval", "--out", out, "--k", "5")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["item_repr"] == "semantic" and metrics["users"] == 40
    catalogue = set(range(1, 61))
    for line in (out / "predictions.jsonl").read_text().splitlines():
        ranked = json.loads(line)["ranked"]
        assert len(ranked) == 5 and set(ranked) <= catalogue and len(set(ranked)) == 5


def test_choose_cold_is_seeded_and_sized():
    ids = np.arange(1, 201)
    first = choose_cold(ids, 0.05, seed=3)
    assert len(first) == 10 and (first == choose_cold(ids, 0.05, seed=3)).all()
    assert not (first == choose_cold(ids, 0.05, seed=4)).all()
    assert len(choose_cold(ids, 0.001)) == 1  # a positive fraction holds out at least one
    with pytest.raises(ConfigError, match="fraction"):
        choose_cold(ids, 1.5)


def test_hold_out_cold_keeps_a_cold_last_item_only():
    sequences = pl.DataFrame(
        {"user_id": [1, 2, 3], "items": [[1, 9, 2, 3, 9], [9, 1, 2, 3], [9, 9, 1, 9]]}
    )
    kept, report = hold_out_cold(sequences, np.array([9]))
    assert kept.get_column("items").to_list() == [[1, 2, 3, 9], [1, 2, 3]]
    assert report == {
        "items": 1,
        "interactions_removed": 4,
        "users_dropped_short": 1,  # user 3 keeps [1, 9]
        "cold_test_cases": 1,
        "warm_test_cases": 1,
    }


def test_metrics_by_group():
    records = [
        {"user_id": 1, "target": 5, "ranked": [5, 2]},
        {"user_id": 2, "target": 9, "ranked": [2, 9]},
        {"user_id": 3, "target": 2, "ranked": [3, 4]},
    ]
    common = {"protocol": "retrieval", "split": "test", "model": "m", "exclude_history": True}
    assert "by_group" not in compute_metrics(records, **common)
    metrics = compute_metrics(records, **common, cold_items=[9], n_boot=50)
    warm, cold = metrics["by_group"]["warm"], metrics["by_group"]["cold"]
    assert (warm["users"], cold["users"]) == (2, 1)
    assert warm["metrics"]["hit@1"] == 0.5 and cold["metrics"]["hit@1"] == 0.0
    assert cold["metrics"]["mrr"] == 0.5
    assert metrics["by_group"]["cold_items"] == [9]


def test_cold_items_never_reach_training_and_are_reported(tmp_path):
    data, samples, run = tmp_path / "shop", tmp_path / "samples", tmp_path / "trained"
    output = _invoke(
        "data",
        "prepare",
        "synthetic",
        "--out",
        data,
        "--num-users",
        "120",
        "--num-items",
        "80",
        "--cold-items",
        "0.05",
    )
    assert "cold items: 4 held out" in output
    dataset = load_prepared(data)
    cold = set(dataset.cold_items.tolist())
    assert len(cold) == 4 and dataset.num_items == 80  # cold items stay in the catalogue
    assert dataset.manifest["report"]["cold"]["cold_test_cases"] > 0

    _invoke("samples", "generate", data, "--out", samples, "--preset", "paper")
    train_rows = pl.read_parquet(samples / "train.parquet")
    shown = {i for row in train_rows.get_column("items_shown").to_list() for i in row or []}
    targets = set(train_rows.get_column("target_item").drop_nulls().to_list())
    assert not cold & shown and not cold & targets
    valid = pl.read_parquet(samples / "valid.parquet")
    assert not cold & set(valid.get_column("target_item").drop_nulls().to_list())
    # test histories hold no cold item; cold items appear only as test targets
    for items in dataset.sequences.get_column("items").to_list():
        assert not cold & set(items[:-1])

    _train(data, samples, run)
    out = tmp_path / "eval"
    _invoke("evaluate", run, "--data", data, "--protocol", "retrieval", "--out", out, "--k", "5")
    metrics = json.loads((out / "metrics.json").read_text())
    groups = metrics["by_group"]
    assert groups["cold"]["users"] == dataset.manifest["report"]["cold"]["cold_test_cases"]
    assert groups["warm"]["users"] + groups["cold"]["users"] == metrics["users"]
    assert set(groups["cold"]["metrics"]) == set(metrics["metrics"])

    _invoke("baseline", "pop", "--data", data, "--out", tmp_path / "pop")
    pop = json.loads((tmp_path / "pop" / "metrics.json").read_text())
    # popularity never saw a cold item: it cannot rank one in its top 10
    assert pop["by_group"]["cold"]["metrics"]["hit@10"] == 0.0


def test_by_group_survives_recompute_and_merge(tmp_path):
    from recalign.evaluation.outputs import (
        merge_evaluations,
        metrics_from_predictions,
        write_evaluation,
    )

    common = {"protocol": "retrieval", "split": "test", "model": "m", "exclude_history": True}
    rows = [
        {"user_id": u, "target": t, "ranked": [t if u % 2 else 1, 2, 3]}
        for u, t in [(1, 5), (2, 9), (3, 9), (4, 6)]
    ]
    written = write_evaluation(tmp_path / "all", rows, **common, cold_items=[9], n_boot=20)
    assert metrics_from_predictions(tmp_path / "all") == written
    write_evaluation(tmp_path / "a", rows[:2], **common, cold_items=[9], n_boot=20)
    write_evaluation(tmp_path / "b", rows[2:], **common, cold_items=[9], n_boot=20)
    merged = merge_evaluations([tmp_path / "a", tmp_path / "b"], tmp_path / "m")
    assert merged["by_group"] == written["by_group"]


def test_pipeline_runs_semantic_ids_on_cold_items(tmp_path):
    """`recalign run` with semantic ids (the hashing embedder, no extra needed) on a
    dataset with cold items: every stage, by_group in the LLM's and a baseline's metrics."""
    from recalign.pipeline.config import parse_config
    from recalign.pipeline.run import run_pipeline

    config = {
        "name": "semantic-cold",
        "data": {
            "name": "synthetic",
            "options": {"users": 100, "items": 120, "cold_items": 0.05},
        },
        "samples": {
            "max_history": 4,
            "item_repr": "semantic",
            "config": {"semantic": {"embedder": "hashing", "codebook_size": 8}},
        },
        "training": {
            "max_steps": 3,
            "eval_steps": 3,
            "batch_size": 8,
            "max_eval_samples": 8,
            "vocab_size": 300,
            "model_overrides": TINY_OVERRIDES["seq2seq"],
        },
        "evaluation": {"protocols": ["retrieval"], "num_beams": 5, "batch_size": 8},
        "baselines": {"models": ["pop"]},
    }
    run_pipeline(parse_config(config), tmp_path / "pipe")
    metrics = json.loads((tmp_path / "pipe" / "eval" / "retrieval" / "metrics.json").read_text())
    assert metrics["item_repr"] == "semantic"
    assert metrics["prompt"]["codes_file"].endswith("semantic_ids.parquet")
    assert metrics["by_group"]["cold"]["users"] >= 1
    pop = json.loads((tmp_path / "pipe" / "baselines" / "pop" / "metrics.json").read_text())
    assert pop["by_group"]["cold"]["users"] == metrics["by_group"]["cold"]["users"]


def test_lora_trains_the_code_embeddings_and_they_reload(tmp_path, hashing_default):
    """LoRA freezes the embeddings, but the rows of the added code tokens are trained
    (peft trainable tokens), saved with the adapter, and read back by evaluation."""
    import torch

    from recalign.models.loading import load_model, load_run_model

    data, samples, run = tmp_path / "shop", tmp_path / "samples", tmp_path / "trained"
    _invoke("data", "prepare", "synthetic", "--out", data, "--num-users", "40", "--num-items", "60")
    _invoke("samples", "generate", data, "--out", samples, "--item-repr", "semantic")
    config = make_config(
        {
            "max_steps": 6,
            "batch_size": 8,
            "eval_steps": 6,
            "max_eval_samples": 16,
            "vocab_size": 300,
            "model_overrides": TINY_OVERRIDES["seq2seq"],
            "lora": {"enabled": True, "r": 4},
            "learning_rate": 1e-2,
        }
    )
    train(data, samples, "tiny-t5", run, config=config, progress=False)
    codes = pl.read_parquet(samples / semantic.SEMANTIC_IDS_FILE).get_column("code").to_list()
    loaded = load_run_model(run)
    ids = loaded.tokenizer.convert_tokens_to_ids(semantic.code_tokens(codes))
    tokens = torch.tensor([ids])
    trained = loaded.model.get_input_embeddings()(tokens).detach()
    base_model = load_model(str(run / "base")).model
    base = base_model.get_input_embeddings()(tokens).detach()
    assert not torch.allclose(trained, base)  # the code rows moved from their mean init
    others = torch.tensor([[i for i in range(20) if i not in ids]])
    # every other row is the frozen base's
    assert torch.equal(
        loaded.model.get_input_embeddings()(others), base_model.get_input_embeddings()(others)
    )
    out = tmp_path / "eval"
    _invoke("evaluate", run, "--data", data, "--protocol", "retrieval", "--out", out, "--k", "5")
    assert json.loads((out / "metrics.json").read_text())["users"] == 40


def test_lora_on_a_pretrained_model_with_semantic_ids_serves(tmp_path, hashing_default):
    """A pretrained base has no code tokens: the run's adapter holds their rows, and
    loading the run gives the base room for them before applying it."""
    from recalign.models.loading import build_tiny
    from recalign.serving import Recommender

    data, samples, run = tmp_path / "shop", tmp_path / "samples", tmp_path / "trained"
    _invoke("data", "prepare", "synthetic", "--out", data, "--num-users", "40", "--num-items", "60")
    _invoke("samples", "generate", data, "--out", samples, "--item-repr", "semantic")
    pretrained = tmp_path / "pretrained"
    base = build_tiny(
        "tiny-t5", dataset=load_prepared(data), vocab_size=300, overrides=TINY_OVERRIDES["seq2seq"]
    )
    base.model.save_pretrained(pretrained)
    base.tokenizer.save_pretrained(pretrained)
    config = make_config(
        {
            "max_steps": 2,
            "batch_size": 8,
            "eval_steps": 2,
            "max_eval_samples": 8,
            "model_overrides": TINY_OVERRIDES["seq2seq"],
            "lora": {"enabled": True, "r": 4},
        }
    )
    train(data, samples, str(pretrained), run, config=config, progress=False)
    rec = Recommender.load(run)
    top = rec.recommend([1, 2], k=5).item_ids
    assert len(top) == 5 and set(top) <= set(range(1, 61))
    # A new item whose prefix is taken needs a code token the adapter never saw: the
    # adapter is merged into the weights so that the embeddings can grow.
    vocabulary = len(rec.backend.tokenizer)
    rec.add_items([rec.catalog.text(7) + " refill"])
    rec.add_items([rec.catalog.text(7) + " travel size", rec.catalog.text(7) + " gift set"])
    assert len(rec.backend.tokenizer) > vocabulary
    assert rec.backend.model.get_input_embeddings().num_embeddings == len(rec.backend.tokenizer)
    every = rec.recommend([1], k=63, exclude_history=False).item_ids
    assert sorted(every) == list(range(1, 64))
