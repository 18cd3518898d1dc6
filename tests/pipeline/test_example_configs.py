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
