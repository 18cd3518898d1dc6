import pytest

from recalign.baselines.config import load_defaults
from recalign.baselines.registry import BASELINES, create_baseline
from recalign.errors import ConfigError


@pytest.mark.parametrize("name", [n for n in BASELINES if n != "sasrec-ce"])
def test_defaults_yaml_matches_the_typed_defaults(name):
    assert load_defaults()[name] == create_baseline(name).config.model_dump()


def test_sasrec_ce_preset():
    assert create_baseline("sasrec-ce").config.loss == "ce"
    assert create_baseline("sasrec").config.loss == "bce"


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match="unknown key 'hiden'"):
        create_baseline("sasrec", {"hiden": 32})


def test_wrong_type_names_key_and_type():
    with pytest.raises(ConfigError, match=r"dropout.*expected"):
        create_baseline("sasrec", {"dropout": "lots"})


def test_unknown_baseline():
    with pytest.raises(ConfigError, match=r"unknown baseline 'gru4rec'.*sasrec"):
        create_baseline("gru4rec")
