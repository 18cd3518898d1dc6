from __future__ import annotations

from pathlib import Path

import pytest

from recalign.baselines.registry import create_baseline
from recalign.pipeline.config import load_config

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))


def test_there_are_example_configs():
    names = {path.stem for path in CONFIGS}
    assert {"beauty-flan-t5-base", "beauty-flan-t5-xl", "beauty-tiny-t5"} <= names
    assert any("toys" in n for n in names) and any("sports" in n for n in names)
    assert any("movielens" in n for n in names) and any("lora" in n for n in names)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_example_config_is_valid_for_every_stage(path):
    config = load_config(path)  # every section is checked here, whole
    config.training.for_run(config.seed)
    for name in config.baselines.models:
        create_baseline(name, config.baselines.options_for(name, config.seed))


def test_the_gpu_config_runs_end_to_end_with_tiny_presets_on_cpu(tmp_path):
    """configs/beauty-smollm2-gpu.yaml with only what a CPU cannot do swapped: a tiny
    causal preset for SmolLM2, a small synthetic shop for Beauty, fp32 for bf16, a CPU
    SASRec, a few steps. Every stage it names runs: both mixtures, retrieval on every
    test user, the baselines."""
    from recalign.pipeline.config import parse_config
    from recalign.pipeline.run import run_pipeline
    from tests.tiny import TINY_OVERRIDES

    path = next(p for p in CONFIGS if p.stem == "beauty-smollm2-gpu")
    raw = load_config(path).model_dump(mode="json")
    assert raw["training"]["precision"] == "bf16" and raw["compare"] == ["rec-only"]
    assert raw["evaluation"]["max_users"] is None
    raw["data"] = {"name": "synthetic", "options": {"users": 40, "items": 60}}
    raw["model"] = {"spec": "tiny-causal"}
    raw["training"].update(
        max_steps=2,
        eval_steps=2,
        batch_size=4,
        max_eval_samples=8,
        precision="fp32",
        vocab_size=300,
        model_overrides=TINY_OVERRIDES["causal"],
    )
    raw["evaluation"].update(batch_size=8, num_beams=4)
    raw["baselines"]["options"]["sasrec"] = {"device": "cpu", "epochs": 1}
    result = run_pipeline(parse_config(raw), tmp_path / "run")
    names = [s.name for s in result.stages]
    assert names == [
        "data",
        "samples",
        "train",
        "eval-retrieval",
        "samples-rec-only",
        "train-rec-only",
        "eval-retrieval-rec-only",
        "baseline-pop",
        "baseline-sasrec",
    ]
    import json

    metrics = json.loads((tmp_path / "run" / "eval" / "retrieval" / "metrics.json").read_text())
    assert metrics["users"] == 40  # every test user
