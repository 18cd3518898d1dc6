"""`Recommender`: hand-computed popularity lists, batching, threads, and run-dir errors."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from recalign.artifacts import InputRecord, read_manifest
from recalign.errors import IncompatibleArtifactError, RecalignError
from recalign.serving import InvalidRequestError, Recommender, UnknownItemsError
from recalign.serving.backends import UnsupportedOperationError
from tests.factories import bare_run, fake_samples
from tests.serving.conftest import TEXTS
from tests.tolerances import assert_same_ranking


def test_popularity_top_k_hand_computed(rec):
    # Train counts: 3 x4, 1 x3, 2 x2, 4 x1, 5 x1, the rest 0 (ties by lower id).
    result = rec.recommend([12], k=6)
    assert result.item_ids == [3, 1, 2, 4, 5, 6]
    assert [r.score for r in result.items] == [4.0, 3.0, 2.0, 1.0, 1.0, 0.0]
    assert [r.rank for r in result.items] == [1, 2, 3, 4, 5, 6]
    assert result.items[0].text == "Green Nail Polish"


def test_history_excluded_by_default_and_included_on_request(rec):
    assert rec.recommend([3, "Red Velvet Lipstick"], k=3).item_ids == [2, 4, 5]
    assert rec.recommend([3, 1], k=3, exclude_history=False).item_ids == [3, 1, 2]


def test_history_by_text_reports_the_match(rec):
    result = rec.recommend(["green nail polish", "Red Velvet Lipstik"], k=1)
    assert [(h.item_id, h.match) for h in result.history] == [(3, "casefold"), (1, "fuzzy")]
    assert result.item_ids == [2]


def test_k_beyond_catalogue_returns_what_is_left(rec):
    result = rec.recommend(list(range(1, 11)), k=50)
    assert result.item_ids == [11, 12]


def test_bad_requests(rec):
    with pytest.raises(UnknownItemsError, match="99"):
        rec.recommend([1, 99])
    with pytest.raises(InvalidRequestError, match="k must be"):
        rec.recommend([1], k=0)
    with pytest.raises(InvalidRequestError, match="duplicate"):
        rec.rank([1], [2, 2, 3])
    with pytest.raises(UnsupportedOperationError, match="ratings"):
        rec.rate([1], 2)


def test_rank_orders_candidates_by_score(rec):
    result = rec.rank([7], ["Mint Lip Balm", 2, 3, 12])
    assert result.item_ids == [3, 2, 7, 12]  # counts 4, 2, 0, 0 (ties keep given order)
    assert [r.score for r in result.items] == [4.0, 2.0, 0.0, 0.0]


def test_batch_equals_single_calls(rec):
    histories = [[1], [3, 2], ["Argan Hair Oil"], [12, 11, 10]]
    batched = rec.recommend_batch(histories, k=4)
    assert [b.item_ids for b in batched] == [rec.recommend(h, k=4).item_ids for h in histories]


def test_rate_through_a_rating_backend(fake_rec):
    result = fake_rec.rate([1, 2], "Mint Lip Balm", ratings=[5.0, 3.0])
    assert (result.item.item_id, result.rating) == (7, 3.0)  # 1 + 7 % 5
    with pytest.raises(InvalidRequestError, match="align"):
        fake_rec.rate([1, 2], 7, ratings=[5.0])


def test_concurrent_callers_get_their_own_answers(fake_rec):
    histories = [[i] for i in range(1, len(TEXTS) + 1)] * 5
    expected = [fake_rec.recommend(h, k=3).item_ids for h in histories]
    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(lambda h: fake_rec.recommend(h, k=3).item_ids, histories))
    assert got == expected


def test_search_items(rec):
    assert [m.item_id for m in rec.search_items("lip", limit=2)] == [7, 1]


# --- loading run directories ---------------------------------------------------------


def test_load_missing_dir(tmp_path):
    with pytest.raises(RecalignError, match="does not exist"):
        Recommender.load(tmp_path / "nope")


def test_load_dir_without_manifest(tmp_path):
    with pytest.raises(RecalignError, match=r"no manifest\.json"):
        Recommender.load(tmp_path)


def test_load_corrupt_manifest(tmp_path):
    (tmp_path / "manifest.json").write_text('{"kind": "run", ')
    with pytest.raises(RecalignError, match="corrupt"):
        Recommender.load(tmp_path)


def test_load_unknown_kind(tmp_path, data_dir):
    fake_samples(data_dir, tmp_path / "samples")
    with pytest.raises(RecalignError, match="cannot be served"):
        Recommender.load(tmp_path / "samples")


def _run(run_dir, **fields):
    """A training run's manifest (no weights: these runs are refused before loading)."""
    run_dir.mkdir(parents=True)
    return bare_run(run_dir, **fields)


def _dataset_input(path, content_hash):
    return {"dataset": InputRecord(kind="dataset", path=str(path), content_hash=content_hash)}


def test_run_without_data_dir_asks_for_it(tmp_path):
    _run(tmp_path / "run")
    with pytest.raises(RecalignError, match="does not record its dataset: pass it with --data"):
        Recommender.load(tmp_path / "run")


def test_run_whose_data_moved(tmp_path):
    _run(tmp_path / "run", inputs=_dataset_input(tmp_path / "gone", "0" * 64))
    with pytest.raises(RecalignError, match=r"cannot find the dataset .* pass it with --data"):
        Recommender.load(tmp_path / "run")


def test_run_on_other_data_is_refused(tmp_path, data_dir):
    _run(tmp_path / "run", inputs=_dataset_input(data_dir, "0" * 64))
    with pytest.raises(IncompatibleArtifactError, match=r"is not the dataset .* was made from"):
        Recommender.load(tmp_path / "run")
    with pytest.raises(IncompatibleArtifactError, match="was made from data 000000000000"):
        Recommender.load(tmp_path / "run", data_dir=data_dir)


def test_llm_run_without_a_model(tmp_path, data_dir):
    data_hash = read_manifest(data_dir).content_hash
    _run(tmp_path / "run", inputs=_dataset_input(data_dir, data_hash), status="interrupted")
    with pytest.raises(RecalignError, match=r"has no trained model .*'interrupted'"):
        Recommender.load(tmp_path / "run")


def test_describe(rec):
    info = rec.describe()
    assert (info["kind"], info["model"], info["num_items"], info["can_rate"]) == (
        "baseline",
        "pop",
        len(TEXTS),
        False,
    )


@pytest.mark.parametrize(("name", "overrides"), [("pop", {}), ("sasrec", {"epochs": 2})])
def test_baseline_run_gives_the_evaluated_top_k(tmp_path, data_dir, name, overrides):
    """A run dir written by `run_baseline` (what `recalign baseline` runs): serving each
    test user's history gives exactly the list in its predictions.jsonl."""
    baselines_run = pytest.importorskip("recalign.baselines.run")
    from recalign.data import load_prepared

    run = tmp_path / f"{name}-run"
    baselines_run.run_baseline(name, data_dir, run, k=5, overrides=overrides)
    predictions = [
        json.loads(line) for line in (run / "predictions.jsonl").read_text().splitlines()
    ]
    served = Recommender.load(run)  # finds its dataset through the run manifest
    assert served.backend.name == name
    test = load_prepared(data_dir).split.test
    histories = dict(zip(test["user_id"].to_list(), test["history"].to_list(), strict=True))
    assert len(predictions) == len(histories)
    for prediction in predictions:
        result = served.recommend(histories[prediction["user_id"]], k=5)
        # The evaluator scores users in batches, the server one history at a time.
        assert_same_ranking(
            result.item_ids,
            [r.score for r in result.items],
            prediction["ranked"],
            prediction["scores"],
        )


@pytest.mark.parametrize("exclude_history", [True, False])
def test_a_dataset_serves_the_evaluated_popularity_lists(tmp_path, data_dir, exclude_history):
    """`recalign serve DATA` (popularity, no saved model) serves, for every test user, the
    list the popularity baseline's evaluation wrote, with the same scores."""
    from recalign.baselines.run import run_baseline
    from recalign.data import load_prepared

    run = tmp_path / "pop-run"
    run_baseline("pop", data_dir, run, k=8, exclude_history=exclude_history)
    predictions = [json.loads(line) for line in (run / "predictions.jsonl").open()]
    test = load_prepared(data_dir).split.test
    histories = dict(zip(test["user_id"].to_list(), test["history"].to_list(), strict=True))
    served = Recommender.load(data_dir)
    for prediction in predictions:
        result = served.recommend(
            histories[prediction["user_id"]], k=8, exclude_history=exclude_history
        )
        assert result.item_ids == prediction["ranked"]
        assert [r.score for r in result.items] == prediction["scores"]


def test_user_id_baseline_is_refused_with_a_message(tmp_path, data_dir):
    """BPR-MF scores known users by id, not histories: a clear 'cannot' instead of a crash."""
    baselines_run = pytest.importorskip("recalign.baselines.run")
    run = tmp_path / "bprmf-run"
    baselines_run.run_baseline("bprmf", data_dir, run, k=5, overrides={"epochs": 1})
    served = Recommender.load(run)
    with pytest.raises(RecalignError, match="user"):
        served.recommend([1, 2])


# --- `recalign run` directories: one of several models, by name --------------------------


@pytest.fixture
def pipeline_dir(tmp_path):
    pytest.importorskip("recalign.baselines.run")
    from tests.serving.conftest import make_pipeline_dir

    return make_pipeline_dir(tmp_path / "run", baselines=("pop", "sasrec"))


def test_pipeline_serves_the_baseline_asked_for(pipeline_dir):
    served = Recommender.load(pipeline_dir, model="sasrec")
    assert served.backend.name == "sasrec"
    info = served.describe()
    assert info["served"] == "sasrec" and info["models"] == ["pop", "sasrec"]
    assert info["pipeline"] == str(pipeline_dir)
    assert "sasrec" in info["score"]
    popular = Recommender.load(pipeline_dir, model="pop").recommend([3], k=3)
    assert popular.item_ids == [1, 2, 4]  # the fixture's popularity order without item 3


def test_pipeline_without_the_named_model_lists_what_it_has(pipeline_dir):
    with pytest.raises(RecalignError) as error:
        Recommender.load(pipeline_dir, model="bprmf")
    message = str(error.value)
    assert "no model 'bprmf'" in message and "it has: pop, sasrec" in message
    assert "global-mean" not in message  # skipped: no manifest, nothing to serve


def test_pipeline_that_has_not_trained_points_to_its_baselines(pipeline_dir):
    with pytest.raises(RecalignError) as error:
        Recommender.load(pipeline_dir)
    message = str(error.value)
    assert "not trained yet" in message and "--model" in message and "pop, sasrec" in message


def test_model_on_a_single_run_is_refused(data_dir):
    with pytest.raises(RecalignError, match="serve it without --model"):
        Recommender.load(data_dir, model="pop")


def test_pipeline_serves_its_fine_tuned_model_by_default(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("recalign.baselines.run")
    from tests.factories import tiny_llm_run
    from tests.serving.conftest import make_pipeline_dir

    run = make_pipeline_dir(tmp_path / "run")
    tiny_llm_run(run / "train", run / "data")
    served = Recommender.load(run)
    info = served.describe()
    assert (info["kind"], info["served"], info["models"]) == ("llm", "llm", ["llm", "pop"])
    assert "log-likelihood" in info["score"]
    assert Recommender.load(run, model="llm").backend.kind == "llm"
    assert Recommender.load(run, model="pop").backend.kind == "baseline"
