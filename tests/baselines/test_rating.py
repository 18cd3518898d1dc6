import numpy as np
import pytest

from recalign.baselines.evaluate import evaluate_rating
from recalign.baselines.registry import create_baseline, load_baseline
from recalign.errors import RecalignError

# Train ratings (all but the last two per user) of the fixture:
#   user 1: item 1 -> 5, item 2 -> 3        user 2: item 2 -> 1, item 3 -> 2
#   user 3: item 1 -> 4, item 3 -> 4        global mean 19 / 6
# Test targets: item 4 for every user, rated 2, 5, 1.


def _fit(name, dataset, **config):
    model = create_baseline(name, config)
    model.fit(dataset)
    return model


def test_means_hand_computed(rating_dataset):
    assert _fit("global-mean", rating_dataset).predict([1, 2], [4, 1]).tolist() == pytest.approx(
        [19 / 6, 19 / 6]
    )
    users = _fit("user-mean", rating_dataset).predict([1, 2, 3, 99], [4, 4, 4, 4])
    assert users.tolist() == pytest.approx([4.0, 1.5, 4.0, 19 / 6])
    items = _fit("item-mean", rating_dataset).predict([1, 1, 1, 1], [1, 2, 3, 4])
    assert items.tolist() == pytest.approx([4.5, 2.0, 3.0, 19 / 6])  # item 4: unseen


def test_rating_metrics_hand_computed(rating_dataset):
    _, metrics = evaluate_rating(_fit("user-mean", rating_dataset), rating_dataset)
    errors = np.array([4.0 - 2.0, 1.5 - 5.0, 4.0 - 1.0])
    assert metrics["rmse"] == pytest.approx(float(np.sqrt((errors**2).mean())))
    assert metrics["mae"] == pytest.approx(float(np.abs(errors).mean()))


def test_biased_mf_beats_the_global_mean(tmp_path):
    from tests.baselines.conftest import write_sequences

    rng = np.random.default_rng(0)
    user_bias, item_bias = rng.normal(0, 1, 60), rng.normal(0, 1, 31)
    sequences, ratings = [], []
    for user in range(60):
        items = (rng.permutation(30)[:12] + 1).tolist()
        sequences.append(items)
        ratings.append(
            [float(np.clip(np.round(3 + user_bias[user] + item_bias[i]), 1, 5)) for i in items]
        )
    dataset = write_sequences(tmp_path, sequences, 30, ratings)
    mf = _fit("biased-mf", dataset, epochs=60, lr=0.05, num_threads=1)
    _, mf_metrics = evaluate_rating(mf, dataset)
    _, base = evaluate_rating(_fit("global-mean", dataset), dataset)
    assert mf_metrics["rmse"] < 0.8 * base["rmse"]
    prediction = mf.predict([1, 2], [3, 4])
    assert ((prediction >= 1) & (prediction <= 5)).all()
    mf.save(tmp_path / "mf")
    np.testing.assert_allclose(load_baseline(tmp_path / "mf").predict([1, 2], [3, 4]), prediction)


def test_rating_baseline_without_ratings_is_a_clear_error(sequential_dataset):
    with pytest.raises(RecalignError, match="needs ratings"):
        _fit("user-mean", sequential_dataset)


def test_mean_save_load(rating_dataset, tmp_path):
    model = _fit("item-mean", rating_dataset)
    model.save(tmp_path / "m")
    loaded = load_baseline(tmp_path / "m")
    assert loaded.predict([1, 1], [1, 4]).tolist() == model.predict([1, 1], [1, 4]).tolist()
