"""Words that fit the domain: what a dataset's items are, recorded at prepare time and
spoken by every template."""

from __future__ import annotations

import json
import re

import polars as pl
import pytest

from recalign.data.domain import DOMAINS, NEUTRAL, Domain, domain_of_manifest, parse_domain
from recalign.errors import ConfigError
from recalign.samples import build_eval_samples, generate_samples, load_templates
from recalign.samples.tasks import TASKS
from tests.factories import write_dataset

from .conftest import RATINGS, SEQUENCES

SHOP_WORDS = re.compile(r"purchase|bought|buy|shop|product", re.IGNORECASE)


def test_parse_domain_presets_pairs_and_errors():
    assert parse_domain("movies") is DOMAINS["movies"]
    assert parse_domain(None) is NEUTRAL
    recipe = parse_domain("item=recipe,verb=cook,verb_past=cooked")
    assert (recipe.items, recipe.verb_past, recipe.history) == (
        "recipes",
        "cooked",
        NEUTRAL.history,
    )
    assert parse_domain({"item": "song", "items": "songs"}).items == "songs"
    with pytest.raises(ConfigError, match="unknown domain 'films'"):
        parse_domain("films")
    with pytest.raises(ConfigError, match="unknown key"):
        parse_domain("thing=x")
    with pytest.raises(ConfigError, match="non-empty"):
        parse_domain("item=")


def test_legacy_manifests_get_their_sources_words():
    assert domain_of_manifest({"name": "movielens-100k"}) is DOMAINS["movies"]
    assert domain_of_manifest({"name": "amazon2014-beauty"}) is DOMAINS["products"]
    assert domain_of_manifest({"name": "synthetic"}) is DOMAINS["products"]
    assert domain_of_manifest({"name": "mine"}) is NEUTRAL
    recorded = {"name": "movielens-100k", "domain": DOMAINS["books"].to_dict()}
    assert domain_of_manifest(recorded) == DOMAINS["books"]


def test_readers_record_their_domain(tmp_path):
    from recalign.data.prepare import prepare_dataset

    ml = tmp_path / "ml"
    ml.mkdir()
    (ml / "u.data").write_text("1\t1\t5\t10\n1\t2\t4\t11\n1\t3\t3\t12\n")
    genres = "|".join(["0"] * 19)
    (ml / "u.item").write_text(
        "".join(f"{i}|Film {i} (1995)|01-Jan-1995||http://x|{genres}\n" for i in (1, 2, 3))
    )
    dataset = prepare_dataset("movielens-100k", tmp_path / "ml-out", source=ml)
    assert dataset.domain == DOMAINS["movies"]
    manifest = json.loads((tmp_path / "ml-out" / "manifest.json").read_text())
    assert manifest["domain"]["verb_past"] == "watched"

    interactions = tmp_path / "log.csv"
    interactions.write_text("user_id,item_id\nu,a\nu,b\nu,c\n")
    neutral = prepare_dataset("custom", tmp_path / "c1", interactions=interactions)
    assert neutral.domain == NEUTRAL
    books = prepare_dataset("custom", tmp_path / "c2", interactions=interactions, domain="books")
    assert books.domain == DOMAINS["books"]
    with pytest.raises(ConfigError, match="unknown domain"):
        prepare_dataset("custom", tmp_path / "c3", interactions=interactions, domain="films")


def test_synthetic_shop_sells_products(tmp_path):
    from recalign.data.synthetic import write_synthetic

    assert write_synthetic(tmp_path / "shop", users=20, items=30).domain == DOMAINS["products"]


def test_cli_custom_domain(tmp_path):
    from typer.testing import CliRunner

    from recalign.cli.data import app

    interactions = tmp_path / "log.csv"
    interactions.write_text("user_id,item_id\nu,a\nu,b\nu,c\n")
    out = tmp_path / "c"
    args = ["prepare", "custom", "--interactions", str(interactions), "-o", str(out)]
    result = CliRunner().invoke(app, [*args, "--domain", "item=recipe,verb=cook,verb_past=cooked"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "manifest.json").read_text())["domain"]["items"] == "recipes"
    refused = CliRunner().invoke(
        app, ["prepare", "synthetic", "-o", str(tmp_path / "s"), "--domain", "movies"]
    )
    assert refused.exit_code != 0


def _movie_dataset(tmp_path):
    """The fixture users with film titles, prepared as MovieLens records it."""
    texts = [f"Film F{i:04d} of the year {1950 + i}" for i in range(1, 41)]
    return write_dataset(
        tmp_path / "d",
        SEQUENCES,
        texts,
        ratings=RATINGS,
        name="movielens-100k",
        source_prefix="",
        domain=DOMAINS["movies"],
    )


def _every_template(tasks) -> dict:
    templates = load_templates()
    return {task: {"templates": [t.id for t in templates.for_task(task, None)]} for task in tasks}


def test_movie_prompts_speak_of_movies(tmp_path):
    dataset = _movie_dataset(tmp_path)
    manifest = generate_samples(dataset, tmp_path / "s", config={"tasks": _every_template(TASKS)})
    assert manifest.domain == DOMAINS["movies"].to_dict()
    for split in ("train", "valid", "test"):
        inputs = pl.read_parquet(tmp_path / "s" / f"{split}.parquet").get_column("input")
        text = "\n".join(inputs.to_list())
        assert not SHOP_WORDS.search(text), SHOP_WORDS.search(text)
    assert "movie" in text and "watched" in text


def test_every_template_uses_the_domain_words_it_declares():
    templates = load_templates().all()
    assert any({"item_noun", "items_noun"} & t.placeholders for t in templates)
    for template in templates:
        values = {name: f"<{name}>" for name in template.placeholders}
        values |= DOMAINS["movies"].words()
        text, _ = template.render(values)
        assert not SHOP_WORDS.search(text), (template.id, text)
        assert "customer" not in text, template.id


def test_undeclared_domain_word_is_an_error(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(
        "task: retrieval\nplaceholders: [history, target]\ntemplates:\n"
        "  - id: my-1\n    version: 1\n"
        '    input: "The user {{ verb_past }} {{ history }}."\n    target: "{{ target }}"\n'
    )
    from recalign.samples.tasks import load_template_file

    with pytest.raises(ConfigError, match=r"undeclared placeholder\(s\) \['verb_past'\]"):
        load_template_file(path)
    path.write_text(path.read_text().replace("[history, target]", "[history, target, verb_past]"))
    (template,) = load_template_file(path)
    assert template.render({"history": "A", "target": "B", "verb_past": "watched"})[0] == (
        "The user watched A."
    )


def test_eval_samples_use_the_dataset_words(tmp_path):
    dataset = _movie_dataset(tmp_path)
    for template in ("default", "unseen"):
        frame = build_eval_samples(dataset, "retrieval", "test", template=template)
        assert all("movie" in text or "watched" in text for text in frame.get_column("input"))
    custom = Domain("recipe", "recipes", "cook", "cooked", "cooking history")
    from recalign.samples.evaluation import render_prompt

    assert render_prompt("retrieval", ["A"], domain=custom) == (
        "A user has cooked these recipes, in order: A. Which recipe will the user cook next?"
    )
