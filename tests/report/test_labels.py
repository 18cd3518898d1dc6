from __future__ import annotations

import shutil
from dataclasses import replace

import pytest

from recalign.artifacts import read_manifest
from recalign.report.collect import BASELINE, LLM, read_evaluation
from recalign.report.labels import collect_run, model_label
from tests.factories import reseal

from .fixture import LLM_LABEL, make_run


def test_labels_come_from_the_manifests(tmp_path):
    run = collect_run(make_run(tmp_path / "run"))
    names = {e.model: e.name for e in run.llm + run.baselines}
    assert names == {
        "train:tiny-t5": LLM_LABEL,
        "sasrec": "SASRec (BCE loss)",
        "pop": "popularity",
        "biased-mf": "biased MF",
        "global-mean": "global mean rating",
    }
    assert {e.name for e in run.same_users} >= {"SASRec (BCE loss), same users"}


def test_llm_label_survives_a_new_model_string_and_a_moved_run(tmp_path):
    original = make_run(tmp_path / "run")
    moved = tmp_path / "copy"
    shutil.copytree(original, moved)
    shutil.rmtree(original)  # metrics.json's run_dir now points nowhere
    evaluation = read_evaluation(moved / "eval" / "retrieval", LLM)
    # Another spelling of the raw id changes nothing: the label is read from manifests.
    renamed = replace(evaluation, model="run:train/tiny-t5@best")
    assert model_label(renamed, moved) == LLM_LABEL
    # Without the training manifest the raw string is the label.
    (moved / "train" / "manifest.json").unlink()
    assert model_label(renamed, moved) == "run:train/tiny-t5@best"


def test_llm_label_ignores_a_training_run_on_other_data(tmp_path):
    run = make_run(tmp_path / "run")
    inputs = read_manifest(run / "train").inputs
    other = inputs["dataset"].model_copy(update={"content_hash": "other"})
    reseal(run / "train", inputs={**inputs, "dataset": other})
    evaluation = read_evaluation(run / "eval" / "retrieval", LLM)
    assert model_label(evaluation, run) == "train:tiny-t5"


@pytest.mark.parametrize(
    ("model", "lora", "preset", "expected"),
    [
        ({"source": "google/flan-t5-base"}, None, "paper", "flan-t5-base (fine-tuned, paper mixture)"),
        ({"source": "/models/smollm2"}, {"r": 8}, "rec-only", "smollm2 (LoRA fine-tuned, rec-only mixture)"),
        ({"source": "tiny-causal", "preset": "tiny-causal"}, None, None, "tiny-causal (trained from scratch)"),
    ],
)  # fmt: skip
def test_llm_label_says_how_the_model_was_trained(tmp_path, model, lora, preset, expected):
    run = make_run(tmp_path / "run")
    prompt = read_manifest(run / "train").prompt.model_copy(update={"preset": preset})
    reseal(run / "train", model=model, lora=lora, prompt=prompt)
    shutil.rmtree(run / "samples")  # the mixture is the run's own record
    evaluation = read_evaluation(run / "eval" / "retrieval", LLM)
    assert model_label(evaluation, run) == expected


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"baseline": "sasrec", "loss": "bce"}, "SASRec (BCE loss)"),
        ({"baseline": "sasrec-ce", "loss": "ce"}, "SASRec (cross-entropy loss)"),
        ({"baseline": "bprmf"}, "BPR-MF"),
        ({"baseline": "user-mean"}, "user's mean rating"),
        ({"baseline": "my-new-model"}, "raw-id"),  # unknown: the raw string
        ({}, "raw-id"),
    ],
)
def test_baseline_labels(tmp_path, config, expected):
    run = make_run(tmp_path / "run")
    evaluation = read_evaluation(run / "baselines" / "pop", BASELINE)
    evaluation = replace(evaluation, model="raw-id", raw={"model": "raw-id", "config": config})
    assert model_label(evaluation, run) == expected


def test_a_zero_shot_row_is_not_labelled_as_the_fine_tuned_model(tmp_path):
    run = make_run(tmp_path / "run")
    evaluation = read_evaluation(run / "eval" / "retrieval", LLM)
    zero_shot = replace(
        evaluation,
        model="tiny-t5 zero-shot (random init)",
        raw={**evaluation.raw, "model_info": {"adaptation": "zero-shot"}},
    )
    assert model_label(zero_shot, run) == "tiny-t5 zero-shot (random init)"
    assert model_label(evaluation, run) == LLM_LABEL
