from __future__ import annotations

import json

import polars as pl

from recalign.data import write_prepared
from recalign.report import build_report
from recalign.report.build import format_value


def _metrics(directory, model, protocol, values, users=3):
    directory.mkdir(parents=True)
    payload = {
        "protocol": protocol,
        "split": "test",
        "model": model,
        "users": users,
        "exclude_history": True,
        "metrics": values,
        "intervals": {k: [v * 0.5, min(1.0, v * 1.5)] for k, v in values.items()},
    }
    (directory / "metrics.json").write_text(json.dumps(payload))


def _dataset(path):
    sequences = pl.DataFrame(
        {"user_id": [1, 2, 3], "items": [[1, 2, 3, 4], [2, 3, 4], [4, 1, 2, 3]]}
    )
    items = pl.DataFrame(
        {
            "item_id": [1, 2, 3, 4],
            "source_id": ["a", "b", "c", "d"],
            "text": ["Red Shampoo", "Red Conditioner", "Blue Serum", "Green Soap"],
            "text_source": ["title"] * 4,
            "disambiguated": [False] * 4,
        }
    )
    return write_prepared(path, "fixture", sequences, items)


def test_report_has_tables_plots_examples_and_is_self_contained(tmp_path):
    run = tmp_path / "run"
    _dataset(run / "data")
    _metrics(run / "eval" / "retrieval", "tiny-t5", "retrieval", {"hit@10": 0.5, "ndcg@10": 0.25})
    _metrics(run / "baselines" / "pop", "pop", "retrieval", {"hit@10": 0.1, "ndcg@10": 0.05})
    _metrics(run / "eval" / "rating", "tiny-t5", "rating", {"rmse": 1.1, "mae": 0.9})
    with (run / "eval" / "retrieval" / "predictions.jsonl").open("w") as handle:
        handle.write(json.dumps({"user_id": 1, "target": 4, "ranked": [3, 4], "scores": [0, -1]}))
        handle.write("\n")
    (run / "train").mkdir()
    (run / "train" / "train_log.jsonl").write_text(
        "\n".join(json.dumps({"step": s, "loss": 3.0 / s}) for s in range(1, 6))
    )
    md_path, html_path = build_report(run)
    md = md_path.read_text()
    assert "| tiny-t5 | test | 3 |" in md
    assert "0.2500 [0.1250, 0.3750]" in md  # value and its interval
    assert "| pop |" in md
    assert "Rating prediction" in md and "1.1000" in md
    assert "figures/full_ranking.png" in md and "figures/training.png" in md
    assert (run / "figures" / "full_ranking.png").stat().st_size > 1000
    # The example shows the user's last items and marks the hit.
    assert "Green Soap   <- hit" in md
    assert "Red Shampoo | Red Conditioner" in md
    html = html_path.read_text()
    assert "data:image/png;base64," in html and "src='figures/" not in html
    assert "<table>" in html


def test_report_without_evaluations_says_so(tmp_path):
    (tmp_path / "run").mkdir()
    md_path, _ = build_report(tmp_path / "run")
    assert "No evaluation has been run yet." in md_path.read_text()


def test_format_value():
    assert format_value(0.5, [0.4, 0.6]) == "0.5000 [0.4000, 0.6000]"
    assert format_value(0.5, None) == "0.5000"


def _predictions(directory, rows):
    with (directory / "predictions.jsonl").open("w") as handle:
        for user, target, ranked in rows:
            record = {
                "user_id": user,
                "target": target,
                "ranked": ranked,
                "scores": [0.0] * len(ranked),
            }
            handle.write(json.dumps(record) + "\n")


def test_baselines_are_also_scored_on_the_llms_users(tmp_path):
    from recalign.report.collect import find_evaluations, on_same_users

    run = tmp_path / "run"
    _dataset(run / "data")
    _metrics(run / "eval" / "retrieval", "tiny-t5", "retrieval", {"hit@1": 0.5}, users=2)
    _predictions(run / "eval" / "retrieval", [(1, 4, [4, 3]), (3, 3, [4, 1])])
    # pop ranked all three users; the LLM saw users 1 and 3, both hits at rank 1 for pop.
    _metrics(run / "baselines" / "pop", "pop", "full", {"hit@1": 2 / 3}, users=3)
    _predictions(run / "baselines" / "pop", [(1, 4, [4, 1]), (2, 4, [1, 2]), (3, 3, [3, 1])])

    llm, baselines = find_evaluations(run / "eval"), find_evaluations(run / "baselines")
    [same] = on_same_users(llm, baselines)
    assert same.model == "pop (same users)" and same.users == 2
    assert same.metrics["hit@1"] == 1.0 and same.metrics["hit@10"] == 1.0
    md = build_report(run)[0].read_text()
    assert "| pop (same users) | test | 2 |" in md and "| pop | test | 3 |" in md
    # No extra rows when the LLM was evaluated on every user.
    _metrics(run / "eval2" / "retrieval", "tiny-t5", "retrieval", {"hit@1": 0.5}, users=3)
    _predictions(run / "eval2" / "retrieval", [(1, 4, [4]), (2, 4, [4]), (3, 3, [3])])
    assert on_same_users(find_evaluations(run / "eval2"), baselines) == []
