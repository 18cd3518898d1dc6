"""Each task on the fixture: hand-checked strings and structural properties."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

from recalign.data.domain import NEUTRAL
from recalign.samples import generate_samples
from recalign.samples.tasks import load_templates
from recalign.samples.tasks.base import format_rating
from recalign.samples.tasks.mlm import Words, assemble, hidden_spans
from tests.factories import write_dataset

from .conftest import SEQUENCES, item_text, make_dataset


@pytest.fixture
def train_frame(tiny, tmp_path):
    generate_samples(tiny, tmp_path / "out", preset="paper", seed=3)
    return pl.read_parquet(tmp_path / "out" / "train.parquet")


def test_every_task_is_generated(train_frame):
    assert set(train_frame["task"].unique()) == {
        "retrieval",
        "ranking",
        "rating",
        "mim",
        "bpr",
        "mlm",
    }


def test_retrieval_one_sample_per_train_position(train_frame):
    rows = train_frame.filter(pl.col("task") == "retrieval")
    # Train parts have len - 2 items; positions t >= 1 give len - 3 samples per user.
    assert rows.height == sum(max(len(s) - 3, 0) for s in SEQUENCES)
    first = rows.filter(pl.col("user_id") == 1).row(0, named=True)
    assert first["target_item"] == 2
    assert first["target"] == item_text(2)
    assert item_text(1) in first["input"] and item_text(2) not in first["input"]
    assert first["items_shown"] == [1, 2]


def test_retrieval_exact_prompt_with_the_default_template(tmp_path):
    dataset = make_dataset(tmp_path / "d", [[1, 2, 3, 4, 5, 6]], 40)
    config = {"tasks": {"retrieval": {"templates": ["retrieval-1"]}}}
    generate_samples(dataset, tmp_path / "o", preset="rec-only", config=config)
    rows = pl.read_parquet(tmp_path / "o" / "train.parquet").filter(pl.col("task") == "retrieval")
    assert rows["input"].to_list() == [
        f"A user has interacted with these items, in order: {item_text(1)}. Which item will the user interact with next?",
        f"A user has interacted with these items, in order: {item_text(1)}; {item_text(2)}. Which item will the user interact with next?",
        f"A user has interacted with these items, in order: {item_text(1)}; {item_text(2)}; {item_text(3)}. Which item will the user interact with next?",
    ]
    assert rows["target_item"].to_list() == [2, 3, 4]


def test_max_history_cuts_the_oldest_items(tiny, tmp_path):
    generate_samples(tiny, tmp_path / "o", preset="rec-only", config={"max_history": 2})
    rows = pl.read_parquet(tmp_path / "o" / "train.parquet").filter(
        (pl.col("task") == "retrieval") & (pl.col("user_id") == 5)
    )
    last = rows.row(-1, named=True)  # train part of user 5: items 2, 17..23; target 23
    assert last["target_item"] == 23
    assert last["items_shown"] == [21, 22, 23]
    assert item_text(20) not in last["input"]


def test_ranking_candidates(train_frame):
    rows = train_frame.filter(pl.col("task") == "ranking")
    for row in rows.iter_rows(named=True):
        candidates = row["candidates"]
        assert len(candidates) == 20 == len(set(candidates))
        assert candidates.count(row["target_item"]) == 1
        assert row["input"].count(item_text(row["target_item"])) == 1
    # The positive's slot is random, not always first or last.
    slots = {row["candidates"].index(row["target_item"]) for row in rows.iter_rows(named=True)}
    assert len(slots) > 3


def test_rating_targets_are_the_ratings(train_frame, tiny):
    rows = train_frame.filter(pl.col("task") == "rating").filter(pl.col("user_id") == 1)
    # User 1 rated items 1..6 with (0 + i) % 5 + 1: item 2 -> 2, item 3 -> 3, item 4 -> 4.
    assert rows["target"].to_list() == ["2", "3", "4"]
    assert rows["target_item"].null_count() == rows.height
    assert "(rated 1)" in rows["input"][0]


def test_mim_masks_items_of_the_window(train_frame):
    rows = train_frame.filter(pl.col("task") == "mim")
    templates = load_templates()
    assert rows.height > 0
    for row in rows.iter_rows(named=True):
        hidden = row["target"].split("; ")
        assert 1 <= len(hidden) < len(row["items_shown"])
        in_template = templates.resolve("mim", row["template"]).input.count("{{ mask }}")
        assert row["input"].count("[MASK]") == len(hidden) + in_template
        for text in hidden:
            assert text not in row["input"]
            assert text in {item_text(i) for i in row["items_shown"]}
        if len(hidden) == 1:
            assert item_text(row["target_item"]) == row["target"]


def test_bpr_pairs(train_frame):
    rows = train_frame.filter(pl.col("task") == "bpr")
    firsts = []
    for row in rows.iter_rows(named=True):
        *_, a, b = row["items_shown"]
        assert row["target_item"] in (a, b)
        negative = b if row["target_item"] == a else a
        assert negative not in SEQUENCES[row["user_id"] - 1]
        firsts.append(row["target_item"] == a)
    assert any(firsts) and not all(firsts)  # order is random


def test_mlm_seq2seq_targets_use_t5_sentinels(train_frame):
    rows = train_frame.filter(pl.col("task") == "mlm")
    assert rows.height > 0
    for row in rows.iter_rows(named=True):
        n = row["input"].count("<extra_id_")
        assert n >= 1
        assert row["target"].startswith("<extra_id_0>")
        assert row["target"].endswith(f"<extra_id_{n}>")


def mask_words(item_words, masked, family):
    """One MLM sample through the generator's span logic: the item texts and the target."""
    words = Words([" ".join(w) for w in item_words])
    flat = [w for ws in item_words for w in ws]
    new_item = np.array([i == 0 for ws in item_words for i in range(len(ws))], dtype=bool)
    hit = np.zeros(len(flat), dtype=bool)
    hit[masked] = True
    first, last = hidden_spans(np.zeros(len(flat), dtype=np.int64), new_item, hit)
    # Byte ranges in the items joined by "; " (the words' item-local ranges, shifted).
    item_of = np.repeat(np.arange(len(item_words)), words.counts)
    base = np.cumsum([0] + [len(t) + 2 for t in words.texts])[item_of]
    spans = list(
        zip((base + words.start)[first].tolist(), (base + words.end)[last].tolist(), strict=True)
    )
    text = b"; ".join(words.texts)
    inp, target = assemble(text, 0, len(text), spans, family, b"[MASK]", b"; ")
    return inp.decode().split("; "), target.decode()


def test_mask_words_hand_computed():
    words = [["a", "b", "c"], ["d", "e"]]
    masked = [1, 2, 3]  # b c d: the span b c stops at the item boundary
    texts, target = mask_words(words, masked, "seq2seq")
    assert texts == ["a <extra_id_0>", "<extra_id_1> e"]
    assert target == "<extra_id_0> b c <extra_id_1> d <extra_id_2>"
    texts, target = mask_words(words, masked, "causal")
    assert texts == ["a [MASK]", "[MASK] e"]
    assert target == "b c; d"
    texts, target = mask_words(words, [0, 4], "seq2seq")
    assert texts == ["<extra_id_0> b c", "d <extra_id_1>"]
    assert target == "<extra_id_0> a <extra_id_1> e <extra_id_2>"
    texts, target = mask_words(words, [], "seq2seq")
    assert texts == ["a b c", "d e"] and target == "<extra_id_0>"


def test_mask_words_runs_out_of_sentinels():
    words = [[f"w{i}" for i in range(300)]]
    texts, target = mask_words(words, list(range(0, 300, 2)), "seq2seq")
    assert texts[0].count("<extra_id_") == 99
    assert target.endswith("<extra_id_99>") and "<extra_id_100>" not in target
    assert "w198" in texts[0] and "w197" in texts[0]


def test_words_byte_ranges_with_multibyte_text_and_odd_spacing():
    words = Words(["", "  Crème  brûlée\tset ", "x"])
    assert words.texts == [b"", "Crème brûlée set".encode(), b"x"]
    assert words.counts.tolist() == [0, 3, 1]
    text = words.texts[1]
    ranges = zip(words.start[:3].tolist(), words.end[:3].tolist(), strict=True)
    assert [text[a:b].decode() for a, b in ranges] == ["Crème", "brûlée", "set"]


def test_mlm_causal_family(tiny, tmp_path):
    generate_samples(tiny, tmp_path / "c", preset="rec+mlm", family="causal")
    rows = pl.read_parquet(tmp_path / "c" / "train.parquet").filter(pl.col("task") == "mlm")
    assert rows.height > 0
    assert not rows["input"].str.contains("extra_id").any()
    assert rows["input"].str.contains(r"\[MASK\]", literal=False).all()


@pytest.mark.parametrize(("value", "text"), [(4.0, "4"), (3.5, "3.5"), (1, "1")])
def test_format_rating(value, text):
    assert format_rating(value) == text


def test_id_representation_is_a_random_permutation(tiny, tmp_path):
    generate_samples(tiny, tmp_path / "id", preset="rec-only", item_repr="id")
    texts = pl.read_parquet(tmp_path / "id" / "item_texts.parquet")
    numbers = texts["text"].str.extract(r"<item_(\d+)>").cast(pl.Int64).to_list()
    assert sorted(numbers) == list(range(1, 41))
    assert numbers != list(range(1, 41))  # never the sequential ids
    rows = pl.read_parquet(tmp_path / "id" / "train.parquet").filter(pl.col("task") == "retrieval")
    row = rows.row(0, named=True)
    assert row["target"] == texts["text"][row["target_item"] - 1]
    assert "Product" not in row["input"]


def test_id_plus_title(tiny, tmp_path):
    generate_samples(tiny, tmp_path / "it", preset="rec-only", item_repr="id+title")
    texts = pl.read_parquet(tmp_path / "it" / "item_texts.parquet")["text"].to_list()
    assert texts[0].startswith("<item_") and texts[0].endswith(item_text(1))


# Titles with multi-byte characters and irregular spacing: texts are assembled as UTF-8
# byte slices, so a wrong offset would cut a character or misplace a word.
ODD_WORDS = ["Crème", "brûlée™", "naïve", "日本語", "plain", "x"]


def odd_text(item_id: int) -> str:
    words = [ODD_WORDS[(item_id + k) % len(ODD_WORDS)] for k in range(item_id % 4 + 1)]
    return f"Item{item_id:03d}  " + "  ".join(words) + " "


def odd_dataset(path):
    sequences = [list(range(u * 9 + 1, u * 9 + 4 + u)) for u in range(5)]  # unique items
    ratings = [[(u + i) % 5 + 1.0 for i in range(len(s))] for u, s in enumerate(sequences)]
    texts = [odd_text(i) for i in range(1, 61)]
    return write_dataset(path, sequences, texts, ratings=ratings, name="odd"), sequences, ratings


WORDS = NEUTRAL.words()  # the fixture's domain words


def check_bounds(row: dict, items: list[str], *, whole: bool) -> None:
    """`history_bounds` locate exactly `items` (the droppable ones) in the input."""
    data, bounds, sep = row["input"].encode(), row["history_bounds"], len(b"; ")
    if not items:
        assert bounds == [], row
        return
    starts, end, resume = bounds[:-2], bounds[-2], bounds[-1]
    assert len(starts) == len(items), (row, items)
    for start, item in zip(starts, items, strict=True):
        assert data[start : start + len(item.encode())] == item.encode(), (row, item)
    assert all(
        b - a == len(i.encode()) + sep for a, b, i in zip(starts, starts[1:], items, strict=False)
    )
    assert end == starts[-1] + len(items[-1].encode())
    assert resume == (end if whole else end + sep)


def placeholder(template, rendered: str, name: str, known: dict) -> str:
    """The value `name` took in `rendered` (an input of `template`), the others known."""
    prefix, suffix = template.render_jinja({**known, name: "\0"})[0].split("\0")
    assert rendered.startswith(prefix) and rendered.endswith(suffix), (rendered, prefix)
    return rendered[len(prefix) : len(rendered) - len(suffix)]


@pytest.mark.parametrize("family", ["seq2seq", "causal"])
def test_every_row_is_its_template_rendered_from_its_items(tmp_path, family):
    """An oracle for all six tasks: each row's text, recomputed with Jinja from its ids."""
    dataset, sequences, ratings = odd_dataset(tmp_path / "d")
    config = {"max_history": 4, "tasks": {"ranking": {"num_candidates": 6}, "mlm": {"ratio": 1.0}}}
    generate_samples(dataset, tmp_path / "o", preset="paper", seed=5, family=family, config=config)
    templates = load_templates()
    text = {i: odd_text(i) for i in range(1, 61)}
    plain = {i: " ".join(t.split()) for i, t in text.items()}
    seen_tasks = set()
    for split in ("train", "valid", "test"):
        table = pq.read_table(tmp_path / "o" / f"{split}.parquet")
        table.validate(full=True)  # valid UTF-8 throughout
        for row in pl.from_arrow(table).iter_rows(named=True):
            task, shown, target_item = row["task"], row["items_shown"], row["target_item"]
            template = templates.resolve(task, row["template"])
            seen_tasks.add(task)
            rendered = (row["input"], row["target"])
            droppable = None  # the history items the prompt may lose, oldest first
            if task == "retrieval":
                values = {
                    "history": "; ".join(text[i] for i in shown[:-1]),
                    "target": text[shown[-1]],
                }
                droppable = [text[i] for i in shown[:-1]]
                assert target_item == shown[-1]
            elif task == "ranking":
                history, candidates = shown[: -len(row["candidates"])], row["candidates"]
                assert shown[len(history) :] == candidates and len(candidates) == 6
                values = {
                    "history": "; ".join(text[i] for i in history),
                    "candidates": "; ".join(text[i] for i in candidates),
                    "num_candidates": 6,
                    "target": text[target_item],
                }
                droppable = [text[i] for i in history]
            elif task == "bpr":
                values = {
                    "history": "; ".join(text[i] for i in shown[:-2]),
                    "item_a": text[shown[-2]],
                    "item_b": text[shown[-1]],
                    "target": text[target_item],
                }
                droppable = [text[i] for i in shown[:-2]]
            elif task == "rating":
                sequence = sequences[row["user_id"] - 1]
                at = sequence.index(shown[-1])
                user_ratings = ratings[row["user_id"] - 1]
                history = [
                    f"{text[i]} (rated {format_rating(user_ratings[sequence.index(i)])})"
                    for i in shown[:-1]
                ]
                values = {
                    "history": "; ".join(history),
                    "item": text[shown[-1]],
                    "target": format_rating(user_ratings[at]),
                }
                droppable = history
            elif task == "mim":
                known = {"mask": "[MASK]", "target": row["target"], **WORDS}
                slots = placeholder(template, row["input"], "history", known).split("; ")
                assert len(slots) == len(shown)
                hidden = [text[i] for i, s in zip(shown, slots, strict=True) if s == "[MASK]"]
                assert all(s in ("[MASK]", text[i]) for i, s in zip(shown, slots, strict=True))
                assert 1 <= len(hidden) < len(shown) and row["target"] == "; ".join(hidden)
                values = {**known, "history": "; ".join(slots)}
                kept_from = slots.index("[MASK]")  # the target needs the masked items
                check_bounds(row, slots[:kept_from], whole=False)
            else:  # mlm: putting the target's words back gives the window's titles
                known = {"target": row["target"], **WORDS}
                masked = placeholder(template, row["input"], "text", known)
                if family == "seq2seq":
                    spans = row["target"].split("<extra_id_")[1:]
                    restored = masked
                    for span in spans[:-1]:
                        number, words = span.split("> ", 1)
                        restored = restored.replace(f"<extra_id_{number}>", words.strip(), 1)
                else:
                    restored = masked
                    for words in row["target"].split("; "):
                        restored = restored.replace("[MASK]", words, 1)
                assert restored == "; ".join(plain[i] for i in shown)
                assert masked != restored
                values = {"text": masked, "target": row["target"]}
                titles = masked.split("; ")  # no title here holds "; "
                kept_from = next(
                    k for k, i in enumerate(shown) if titles[k] != plain[i]
                )  # the first title with a masked word
                check_bounds(row, titles[:kept_from], whole=False)
            if droppable is not None:
                check_bounds(row, droppable, whole=True)
            values |= WORDS
            assert rendered == template.render_jinja(values), (task, row["template"])
    assert seen_tasks == {"retrieval", "ranking", "rating", "mim", "bpr", "mlm"}


def generate_with_template(tmp_path, dataset, task, placeholders, input, target):
    """Train rows of `task` generated with one user template (id `mine`)."""
    path = tmp_path / f"{task}.yaml"
    path.write_text(
        f"task: {task}\n"
        f"placeholders: [{', '.join(placeholders)}]\n"
        "templates:\n"
        "  - id: mine\n"
        "    version: 1\n"
        f"    input: {json.dumps(input)}\n"
        f"    target: {json.dumps(target)}\n"
    )
    generate_samples(dataset, tmp_path / "o", preset="rec-only", templates=[path])
    return pl.read_parquet(tmp_path / "o" / "train.parquet").filter(pl.col("task") == task)


def test_user_templates_that_need_jinja(tmp_path, tiny):
    rows = generate_with_template(
        tmp_path,
        tiny,
        "retrieval",
        ["history", "target"],
        "{% if history %}BOUGHT: {{ history | upper }}{% endif %}",
        "{{ target | lower }}",
    )
    first = rows.row(0, named=True)
    assert first["template"] == "mine"
    assert first["input"] == f"BOUGHT: {item_text(1).upper()}"
    assert first["target"] == item_text(2).lower()


def test_jinja_templates_get_constants_with_their_type(tmp_path, tiny):
    rows = generate_with_template(
        tmp_path,
        tiny,
        "ranking",
        ["history", "candidates", "num_candidates", "target"],
        "{{ history }} | {% if num_candidates > 3 %}many{% endif %}: {{ candidates }}",
        "{{ target }}",
    )
    assert rows.height and rows["input"].str.contains(" | many: ").all()
