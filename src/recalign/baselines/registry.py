"""The explicit table of baselines: name -> class and the config overrides it starts from.

`sasrec` is the BCE variant of the literature tables; `sasrec-ce` the full-softmax one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from recalign.baselines.base import Baseline, read_model_meta
from recalign.baselines.bprmf import BPRMF
from recalign.baselines.config import parse_config
from recalign.baselines.pop import Popularity
from recalign.baselines.rating import BiasedMF, GlobalMean, ItemMean, UserMean
from recalign.baselines.sasrec import SASRec
from recalign.errors import ConfigError
from recalign.validation import unknown_name


@dataclass(frozen=True)
class BaselineSpec:
    cls: type[Baseline]
    preset: dict[str, Any] = field(default_factory=dict)
    help: str = ""

    @property
    def kind(self) -> str:
        return self.cls.kind

    @property
    def config_model(self) -> type[BaseModel]:
        """The pydantic model of this baseline's options (`recalign.baselines.config`)."""
        return self.cls.config_class


BASELINES: dict[str, BaselineSpec] = {
    "pop": BaselineSpec(Popularity, help="most interacted items in the train part"),
    "bprmf": BaselineSpec(BPRMF, help="BPR matrix factorisation"),
    "sasrec": BaselineSpec(SASRec, {"loss": "bce"}, "SASRec, one sampled negative (BCE)"),
    "sasrec-ce": BaselineSpec(SASRec, {"loss": "ce"}, "SASRec, full softmax cross-entropy"),
    "global-mean": BaselineSpec(GlobalMean, help="the mean train rating"),
    "user-mean": BaselineSpec(UserMean, help="the user's mean train rating"),
    "item-mean": BaselineSpec(ItemMean, help="the item's mean train rating"),
    "biased-mf": BaselineSpec(BiasedMF, help="mu + b_u + b_i + p_u . q_i"),
}


def get_spec(name: str) -> BaselineSpec:
    try:
        return BASELINES[name]
    except KeyError:
        raise ConfigError(unknown_name("baseline", name, list(BASELINES))) from None


def create_baseline(name: str, overrides: dict[str, Any] | None = None) -> Baseline:
    """A fresh baseline from its preset plus `overrides` (validated, unknown keys named)."""
    spec = get_spec(name)
    config = parse_config(spec.config_model, {**spec.preset, **(overrides or {})}, where=name)
    return spec.cls(config)


def load_baseline(model_dir: str | Path) -> Baseline:
    """Load a saved baseline, whichever it is (the name is read from `model.json`)."""
    meta = read_model_meta(Path(model_dir))
    for spec in BASELINES.values():
        if spec.cls.name == meta.get("name"):
            return spec.cls.load(model_dir)
    raise ConfigError(f"{model_dir}: saved model {meta.get('name')!r} is not a known baseline")
