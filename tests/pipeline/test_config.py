from __future__ import annotations

import pytest

from recalign.errors import ConfigError
from recalign.pipeline.config import (
    BaselinesSection,
    TrainingSection,
    load_config,
    parse_config,
)


def test_default_config_is_the_demo():
    config = load_config(None)
    assert config.data.name == "synthetic"
    assert config.model.spec == "tiny-t5"
    assert config.samples.preset == "paper"


def test_unknown_key_is_named(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("samples:\n  presett: rec-only\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert "samples.presett" in str(error.value)
    assert "unknown key" in str(error.value)
    assert str(path) in str(error.value)


def test_wrong_type_names_key_and_expected_type():
    with pytest.raises(ConfigError) as error:
        parse_config({"evaluation": {"max_users": "many"}})
    message = str(error.value)
    assert "evaluation.max_users" in message
    assert "integer" in message


def test_invalid_protocol_is_rejected():
    with pytest.raises(ConfigError, match=r"evaluation\.protocols"):
        parse_config({"evaluation": {"protocols": ["retrieval", "magic"]}})


def test_not_a_mapping(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(path)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_a_real_dataset_config_gets_no_demo_budget(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("data:\n  name: amazon2014-beauty\n")
    config = load_config(path)
    assert config.data.options == {}
    assert config.training == TrainingSection()  # the defaults, not the demo's budget
    assert config.baselines.options == BaselinesSection().options
    assert config.baselines.options["sasrec"]["epochs"] == 300
    assert config.evaluation.max_users is None


def test_the_demo_compares_its_mixture_with_rec_only_under_one_budget():
    config = load_config(None)
    assert config.compare == ["rec-only"]
    training = config.training.for_run(config.seed)
    # Only what the steps read is tokenised: memory stays small whatever the shop's size.
    assert training.max_train_samples == training.max_steps * training.batch_size
    assert training.eval_steps == training.max_steps  # one validation pass, at the end
    assert set(config.evaluation.protocols) == {"retrieval", "ranking", "sampled", "rating"}
    assert len(config.baselines.models) == 8


@pytest.mark.parametrize(
    ("compare", "message"),
    [
        (["paper"], "'paper' is samples.preset already"),
        (["nope"], "compare: unknown preset 'nope'"),
        (["rec-only", "rec-only"], "listed twice"),
    ],
)
def test_compare_presets_are_checked(compare, message):
    with pytest.raises(ConfigError, match=message):
        parse_config({"compare": compare})
