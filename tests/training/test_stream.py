"""Streaming the samples: the same ids as the eager tokenisation, subsets, lengths, memory."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recalign.errors import DataFormatError, MissingColumnError, RecalignError
from recalign.models.tiny import train_tokenizer
from recalign.training.data import (
    IGNORE_INDEX,
    Collator,
    Lengths,
    causal_example,
    encode_batch,
    truncate_answer,
)
from recalign.training.sampler import LengthGroupedSampler, LongestFirstSampler, ShuffleSampler
from recalign.training.stream import (
    build_text_set,
    choose_rows,
    head_texts,
    iter_texts,
    open_split,
)


def eager_reference(tokenizer, family, prompts, answers, lengths, bounds):
    """The whole split tokenised at once: prompts fitted to the budget, answers cut."""
    from recalign.models.tokenization import encode_answers, fit_prompts

    prompt_ids = fit_prompts(
        tokenizer, family, prompts, bounds, lengths.max_source_length, quiet=True
    ).ids
    answer_ids = encode_answers(tokenizer, family, answers)
    inputs, labels = [], []
    for prompt, answer in zip(prompt_ids, answer_ids, strict=True):
        answer = truncate_answer(answer, lengths.max_target_length)
        ids, label = causal_example(prompt, answer) if family == "causal" else (prompt, answer)
        inputs.append(ids)
        labels.append(label)
    if family == "causal":
        length = [len(ids) for ids in inputs]
    else:
        length = [len(a) + len(b) for a, b in zip(inputs, labels, strict=True)]
    return inputs, labels, length


@pytest.fixture(scope="module")
def tokenizers(generated_shop):
    made = {}
    for family, (_, samples) in generated_shop.items():
        frame = pl.read_parquet(Path(samples) / "train.parquet")
        corpus = frame["input"].to_list() + frame["target"].to_list()
        made[family] = train_tokenizer(corpus, vocab_size=400, family=family)
    return made


@pytest.mark.parametrize("family", ["seq2seq", "causal"])
def test_streamed_batches_have_the_eager_ids(family, generated_shop, tokenizers, tmp_path):
    """Every task of the `paper` mixture, prompts cut short: ids, labels and lengths as before."""
    _, samples = generated_shop[family]
    tok = tokenizers[family]
    lengths = Lengths(48, 6)  # short enough that many prompts and some answers are cut
    frame = pl.read_parquet(Path(samples) / "train.parquet")
    inputs, labels, length = eager_reference(
        tok,
        family,
        frame["input"].to_list(),
        frame["target"].to_list(),
        lengths,
        frame["history_bounds"].to_list(),
    )
    split = open_split(samples, "train")
    texts = build_text_set(
        split,
        None,
        tmp_path / "t.arrow",
        tokenizer=tok,
        family=family,
        lengths=lengths,
        source="tokens",
    )
    assert len(texts) == frame.height and texts.lengths.tolist() == length
    from recalign.models.tokenization import encode_answers, encode_prompts

    prompts = encode_prompts(tok, family, frame["input"].to_list())
    answers = encode_answers(tok, family, frame["target"].to_list())
    assert sum(len(x) > lengths.max_source_length for x in prompts) > 10  # cuts happened
    assert any(len(x) > lengths.max_target_length for x in answers)
    collate = Collator(tok, family, lengths)
    for start in range(0, len(texts), 7):
        rows = texts.dataset[start : start + 7]
        encoded = encode_batch(
            tok, family, rows["input"], rows["target"], lengths, rows["history_bounds"]
        )
        assert encoded.input_ids == inputs[start : start + 7]
        assert encoded.labels == labels[start : start + 7]
        batch = collate(
            [
                {"input": a, "target": b, "history_bounds": c}
                for a, b, c in zip(*rows.values(), strict=True)
            ]
        )
        for row, ids in zip(batch["input_ids"], inputs[start:], strict=False):
            assert row[: len(ids)].tolist() == ids
        for row, label in zip(batch["labels"], labels[start:], strict=False):
            assert row[: len(label)].tolist() == label
            assert (row[len(label) :] == IGNORE_INDEX).all()


def _write(path: Path, n: int, *, seed: int = 0, row_group: int | None = None) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    words = np.array(["red", "lipstick", "blue", "polish", "cream", "the", "user", "bought"])

    def texts(longest: int) -> pl.Series:
        # Row i gets text i of a pool of 1,000 distinct texts (fast for 100k rows).
        pool = [" ".join(rng.choice(words, size=int(k))) for k in rng.integers(1, longest, 1000)]
        return pl.Series(pool)[rng.integers(0, 1000, n) if n > 1000 else np.arange(n)]

    frame = pl.DataFrame(
        {
            "task": rng.choice(["retrieval", "ranking", "mim"], size=n).tolist(),
            "input": texts(30),
            "target": texts(5),
        }
    )
    frame.write_parquet(path, row_group_size=row_group or max(1, n // 3))
    return frame


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    n=st.integers(1, 300),
    limit=st.one_of(st.none(), st.integers(1, 320)),
    tasks=st.one_of(st.none(), st.sampled_from([["ranking"], ["mim", "retrieval"]])),
    batch_rows=st.integers(1, 64),
    seed=st.integers(0, 3),
)
def test_streamed_subset_is_the_frame_subset(tmp_path_factory, n, limit, tasks, batch_rows, seed):
    """Task filter then seeded subset, as `frame.filter(...)[sorted choice]` did in memory."""
    folder = tmp_path_factory.mktemp("split")
    frame = _write(folder / "train.parquet", n, seed=seed)
    if tasks is not None:
        frame = frame.filter(pl.col("task").is_in(tasks))
    if frame.height == 0:
        with pytest.raises(RecalignError, match="no samples for tasks"):
            open_split(folder, "train", tasks=tasks)
        return
    split = open_split(folder, "train", tasks=tasks)
    assert split.rows == frame.height
    rows = choose_rows(split.rows, limit, seed)
    if limit is None or frame.height <= limit:
        assert rows is None
        expected = frame
    else:
        chosen = np.sort(np.random.default_rng(seed).choice(frame.height, limit, replace=False))
        assert rows.tolist() == chosen.tolist()
        expected = frame[chosen]
    got = [t for t in iter_texts(split, rows, batch_rows=batch_rows)]
    assert sum(t.num_rows for t in got) == expected.height
    assert [x for t in got for x in t.column("input").to_pylist()] == expected["input"].to_list()
    assert [x for t in got for x in t.column("target").to_pylist()] == expected["target"].to_list()
    head = head_texts(split, rows, 5)
    assert head == expected["input"].to_list()[:5] + expected["target"].to_list()[:5]


def test_bad_splits_are_named(tmp_path):
    with pytest.raises(RecalignError, match="no valid split"):
        open_split(tmp_path, "valid")
    pl.DataFrame({"input": ["a"], "answer": ["b"]}).write_parquet(tmp_path / "train.parquet")
    with pytest.raises(MissingColumnError, match="'target'"):
        open_split(tmp_path, "train")
    (tmp_path / "train.parquet").write_text("not parquet")
    with pytest.raises(DataFormatError, match="not a readable Parquet file"):
        open_split(tmp_path, "train")
    pl.DataFrame({"input": ["a", "b", None], "target": ["x", "y", "z"]}).write_parquet(
        tmp_path / "train.parquet"
    )
    split = open_split(tmp_path, "train")
    with pytest.raises(DataFormatError, match=r"train.parquet, line 3: sample with an empty"):
        list(iter_texts(split, batch_rows=2))


def test_byte_estimates_order_like_token_lengths(generated_shop, tokenizers, tmp_path):
    _, samples = generated_shop["causal"]
    tok = tokenizers["causal"]
    split = open_split(samples, "train")
    lengths = Lengths(64, 16)
    made = {
        source: build_text_set(
            split,
            None,
            tmp_path / f"{source}.arrow",
            tokenizer=tok,
            family="causal",
            lengths=lengths,
            source=source,
        )
        for source in ("bytes", "tokens")
    }
    exact, estimate = made["tokens"].lengths, made["bytes"].lengths
    assert estimate.max() <= lengths.max_source_length + lengths.max_target_length
    ranks = [np.argsort(np.argsort(x)) for x in (exact, estimate)]
    assert np.corrcoef(*ranks)[0, 1] > 0.9
    assert np.median(np.abs(estimate - exact) / exact) < 0.15


def test_samplers_cover_every_index_in_a_seeded_order():
    lengths = np.random.default_rng(0).integers(1, 500, size=1003).astype(np.int32)
    grouped = LengthGroupedSampler(lengths, batch_size=4, seed=7)
    order = list(grouped)
    assert sorted(order) == list(range(1003))
    assert lengths[order[0]] == lengths.max()  # the largest batch comes first
    assert order == list(LengthGroupedSampler(lengths, batch_size=4, seed=7))
    grouped.set_epoch(1)
    assert list(grouped) != order
    # Within each megabatch (50 batches of 4) lengths never increase, but for the swap.
    mega = lengths[order[200:400]]
    assert (np.diff(mega) <= 0).all()
    shuffled = ShuffleSampler(lengths, seed=7)
    assert sorted(shuffled) == list(range(1003)) and list(shuffled) != list(range(1003))
    assert list(LongestFirstSampler(lengths)) == np.argsort(-lengths, kind="stable").tolist()
    assert list(LengthGroupedSampler(np.zeros(0, np.int32), batch_size=4, seed=0)) == []


def test_length_grouping_cuts_padding():
    lengths = np.random.default_rng(1).integers(5, 300, size=4000).astype(np.int32)

    def padded(order):
        batches = np.array(order).reshape(-1, 8)
        return float(lengths[batches].max(axis=1).sum() * 8 / lengths.sum())

    assert padded(list(LengthGroupedSampler(lengths, 8, seed=0))) < 1.05
    assert padded(list(ShuffleSampler(lengths, seed=0))) > 1.5


MEASURE = textwrap.dedent(
    """
    import json, sys, tracemalloc
    import datasets
    import pyarrow as pa
    from recalign.models.tiny import train_tokenizer
    from recalign.training.data import Lengths
    from recalign.training.sampler import LengthGroupedSampler
    from recalign.training.stream import build_text_set, open_split

    folder, source = sys.argv[1], sys.argv[2]
    tok = train_tokenizer(["red lipstick blue polish cream the user bought"] * 50, 200, "causal")
    split = open_split(folder, "train")
    base = pa.default_memory_pool().max_memory()
    tracemalloc.start()
    texts = build_text_set(split, None, folder + "/t.arrow", tokenizer=tok, family="causal",
                           lengths=Lengths(64, 16), source=source)
    sampler = iter(LengthGroupedSampler(texts.lengths, 16, seed=0))
    first = [next(sampler) for _ in range(64)]
    batch = texts.dataset.__getitems__(first)
    python_peak = tracemalloc.get_traced_memory()[1]
    arrow_peak = pa.default_memory_pool().max_memory() - base
    print(json.dumps({"rows": len(texts), "python": python_peak, "arrow": arrow_peak,
                      "mapped": [f["filename"] for f in texts.dataset.cache_files]}))
    """
)


@pytest.mark.parametrize("source", ["bytes", pytest.param("tokens", marks=pytest.mark.slow)])
def test_data_path_memory_is_flat_in_the_number_of_samples(tmp_path, source):
    """Python and Arrow heap peaks grow by a few bytes a sample, not by its ids or text."""
    measured = {}
    # Both above one read batch (stream.READ_ROWS), whose buffers are the fixed cost.
    for n in (16_000, 128_000):
        folder = tmp_path / str(n)
        folder.mkdir()
        # Parquet is read a row group at a time: the buffers scale with the row group
        # the writer chose, the same here for both sizes.
        _write(folder / "train.parquet", n, row_group=4096)
        done = subprocess.run(
            [sys.executable, "-c", MEASURE, str(folder), source],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        measured[n] = json.loads(done.stdout.strip().splitlines()[-1])
        assert measured[n]["rows"] == n
        assert measured[n]["mapped"] == [str(folder / "t.arrow")]  # texts stay on disk
    extra = 112_000
    per_sample = {
        k: (measured[128_000][k] - measured[16_000][k]) / extra for k in ("python", "arrow")
    }
    # The eager path held ~100 bytes of Python ints per token (~2 KB a sample here), the
    # texts alone are ~100 bytes a sample; the budget is memory.DATA_BYTES_PER_SAMPLE (16)
    # with room for transients. The Arrow peak varies by ~0.5 MB with the longest batch.
    assert per_sample["python"] < 48, (per_sample, measured)
    assert per_sample["arrow"] < 8, (per_sample, measured)
