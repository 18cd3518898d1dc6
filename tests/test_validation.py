"""The one YAML reader and validation-error format every config uses."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict, Field, field_validator

from recalign.errors import ConfigError
from recalign.validation import Problems, read_yaml, unknown_name, validate


class Lora(BaseModel):
    model_config = ConfigDict(extra="forbid")
    r: int = Field(8, ge=1)


class Training(BaseModel):
    model_config = ConfigDict(extra="forbid")
    batch_size: int = Field(16, ge=1)
    precision: str = "auto"
    lora: Lora = Field(default_factory=Lora)


class Entries(BaseModel):
    """Entries checked against a model chosen by name, as baselines and tasks are."""

    model_config = ConfigDict(extra="forbid")
    options: dict[str, dict] = Field(default_factory=dict)

    @field_validator("options")
    @classmethod
    def _each(cls, options: dict) -> dict:
        problems = Problems()
        for name, values in options.items():
            if name != "training":
                problems.add((name,), unknown_name("entry", name, ["training", "other"]))
            else:
                problems.validate((name,), Training, values)
        problems.check()
        return options


class Run(BaseModel):
    model_config = ConfigDict(extra="forbid")
    training: Training = Field(default_factory=Training)
    entries: Entries = Field(default_factory=Entries)
    max_users: int | None = None


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"training": {"batch_sise": 8}}, "unknown key 'training.batch_sise' (did you mean"),
        ({"training": {"lora": {"rank": 8}}}, "unknown key 'training.lora.rank' (known keys: r)"),
        ({"training": {"batch_size": 0}}, "training.batch_size: expected >= 1, got 0"),
        ({"max_users": "many"}, "max_users: expected a valid integer"),
        ({"entries": {"options": {"training": {"lora": {"r": 0}}}}}, "options.training.lora.r:"),
        (
            {"entries": {"options": {"training": {"batch_sise": 1}}}},
            "unknown key 'entries.options.training.batch_sise' (did you mean 'batch_size'?)",
        ),
        (
            {"entries": {"options": {"trainin": {}}}},
            "entries.options.trainin: unknown entry 'trainin' (did you mean 'training'?)",
        ),
    ],
)
def test_a_problem_names_its_key_path_and_the_origin(values, message):
    with pytest.raises(ConfigError) as error:
        validate(Run, values, "run.yaml")
    assert str(error.value).startswith("run.yaml: ")
    assert message in str(error.value)


def test_several_problems_are_listed_one_per_line():
    with pytest.raises(ConfigError) as error:
        validate(Run, {"training": {"batch_size": 0, "precision": 3}, "zzz": 1}, "run.yaml")
    lines = str(error.value).splitlines()
    assert lines[0] == "run.yaml: 3 problems:"
    assert [line[:4] for line in lines[1:]] == ["  - "] * 3
    assert "unknown key 'zzz' (known keys: training, entries, max_users)" in lines[3]


def test_read_yaml_errors_name_the_file_and_line(tmp_path):
    with pytest.raises(ConfigError, match=r"config file .*nope\.yaml does not exist"):
        read_yaml(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("training:\n  batch_size: [8\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml, line \d: not valid YAML"):
        read_yaml(broken)
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n")
    with pytest.raises(ConfigError, match="expected a mapping of keys, got list"):
        read_yaml(listed)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert read_yaml(empty) == {}
