from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from recalign.cli.samples import app
from recalign.errors import ConfigError
from recalign.samples.tasks import TASKS, load_template_file, load_templates

GOOD = """
task: retrieval
placeholders: [history, target]
templates:
  - id: my-1
    version: 2
    input: "History: {{ history }}. Next?"
    target: "{{ target }}"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    return path


def test_every_task_has_four_training_and_one_unseen_template():
    templates = load_templates()
    assert set(templates.tasks) == set(TASKS)
    for task in TASKS:
        assert len(templates.for_task(task, "train")) >= 4, task
        assert len(templates.for_task(task, "unseen")) >= 1, task
        assert templates.resolve(task, "default") is templates.for_task(task, "train")[0]
        assert templates.resolve(task, "unseen").split == "unseen"


@pytest.mark.parametrize("template", load_templates().all(), ids=lambda t: t.id)
def test_fast_rendering_equals_jinja(template):
    # The compiled format strings must give exactly what Jinja gives, braces included.
    values = {name: f"<{name} {{x}} é>" for name in template.placeholders}
    assert template.fast
    assert template.render(values) == template.render_jinja(values)


def test_jinja_control_flow_falls_back_to_jinja(tmp_path):
    text = GOOD.replace(
        '"History: {{ history }}. Next?"', '"{% if history %}H: {{ history | upper }}{% endif %}"'
    )
    (template,) = load_template_file(write(tmp_path, text))
    assert not template.fast
    assert template.render({"history": "ab", "target": "t"}) == ("H: AB", "t")


def test_user_file_replaces_the_task_templates(tmp_path):
    templates = load_templates([write(tmp_path, GOOD)])
    assert [t.id for t in templates.for_task("retrieval", None)] == ["my-1"]
    assert templates.versions()["my-1"] == 2
    assert len(templates.for_task("ranking")) >= 4  # other tasks untouched


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("{{ history }}. Next?", "{{ histroy }}. Next?"), "undeclared placeholder(s) ['histroy']"),
        (
            ("[history, target]", "[history, target, candidates]"),
            "unknown placeholder(s) ['candidates']",
        ),
        (
            ("{{ history }}. Next?", "no history. Next?"),
            "declared placeholder(s) ['history'] unused",
        ),
        (("{{ history }}. Next?", "{{ history }. Next?"), "Jinja syntax error"),
        (("version: 2", "version: two"), "templates.0.version"),
        (("task: retrieval", "task: retreival"), "unknown task 'retreival'"),
        (("    version: 2", "    version: 2\n    split: test"), "templates.0.split"),
    ],
)
def test_bad_templates_name_file_and_template(tmp_path, change, message):
    path = write(tmp_path, GOOD.replace(*change))
    with pytest.raises(ConfigError) as error:
        load_template_file(path)
    assert message in str(error.value)
    assert str(path) in str(error.value)


def test_error_names_the_template_id(tmp_path):
    path = write(tmp_path, GOOD.replace("{{ history }}. Next?", "{{ hist }}"))
    with pytest.raises(ConfigError, match="template 'my-1'"):
        load_template_file(path)


def test_duplicate_ids_are_rejected(tmp_path):
    doubled = GOOD + GOOD.split("templates:\n", 1)[1]
    with pytest.raises(ConfigError, match="duplicate template id"):
        load_template_file(write(tmp_path, doubled))


def test_a_file_needs_a_training_template(tmp_path):
    with pytest.raises(ConfigError, match="at least one `split: train`"):
        load_template_file(
            write(tmp_path, GOOD.replace("    version: 2", "    version: 2\n    split: unseen"))
        )


def test_resolve_unknown_template():
    with pytest.raises(ConfigError, match="no template 'nope' for task 'retrieval'"):
        load_templates().resolve("retrieval", "nope")


def test_cli_lists_and_validates(tmp_path):
    runner = CliRunner()
    listed = runner.invoke(app, ["templates", "--task", "mim"])
    assert listed.exit_code == 0
    assert "mim-unseen-1" in listed.output and "bpr-1" not in listed.output
    ok = runner.invoke(app, ["templates", "--validate", str(write(tmp_path, GOOD))])
    assert ok.exit_code == 0 and "ok (1 templates" in ok.output
    bad = write(tmp_path, GOOD.replace("{{ history }}. Next?", "{{ hist }}"))
    failed = runner.invoke(app, ["templates", "--validate", str(bad)])
    assert failed.exit_code != 0
    assert isinstance(failed.exception, ConfigError)
