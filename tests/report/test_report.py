from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import polars as pl

from recalign.artifacts import EvaluationManifest, seal
from recalign.data import write_prepared
from recalign.report import build_report
from recalign.report.build import format_value
from tests.factories import reseal

from .fixture import LLM_LABEL, make_run

GOLDEN = Path(__file__).parent / "golden" / "fixture_report.md"


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


def _seal(run):
    """Commit every evaluation directory written by hand below `run` (predictions are
    part of the contract: an empty file where a test writes none)."""
    for path in run.rglob("metrics.json"):
        (path.parent / "predictions.jsonl").touch()
        seal(
            path.parent, EvaluationManifest(protocol="retrieval", split="test", model="x", users=0)
        )
    return run


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


def _section(md: str, heading: str) -> str:
    """The text under `heading` up to the next heading of the same or a higher level."""
    level = heading.split(" ")[0]
    start = md.index(heading + "\n")
    rest = md[start + len(heading) + 1 :]
    end = re.search(rf"^#{{1,{len(level)}}} ", rest, flags=re.MULTILINE)
    return rest[: end.start()] if end else rest


def _table_models(section: str) -> list[str]:
    rows = [line for line in section.splitlines() if line.startswith("| ")][1:]
    return [row.split(" | ")[0].removeprefix("| ") for row in rows]


def test_report_reads_top_down_for_a_newcomer(tmp_path):
    md = build_report(make_run(tmp_path / "run"))[0].read_text()
    headings = re.findall(r"^#+ .*$", md, flags=re.MULTILINE)
    assert headings[:5] == [
        "# recalign report: fixture",
        "## Summary",
        "## Settings",
        "## Results",
        "### Full ranking over the catalogue (retrieval)",
    ]
    assert headings.index("## How to read the tables") > headings.index("### Rating prediction")
    # The LLM first, then the baselines on its users, then on every user; best first.
    full = _section(md, "### Full ranking over the catalogue (retrieval)")
    assert _table_models(full) == [
        LLM_LABEL,
        "SASRec (BCE loss), same users",
        "popularity, same users",
        "SASRec (BCE loss)",
        "popularity",
    ]
    assert f"| {LLM_LABEL} | 20 | 0.5000 [0.3000, 0.7000] |" in full
    rating = _section(md, "### Rating prediction")
    assert _table_models(rating)[:2] == [LLM_LABEL, "biased MF, same users"]
    assert "### Ranking 20 candidates in the prompt" in headings


def test_report_has_a_legend_and_settings_in_words(tmp_path):
    md = build_report(make_run(tmp_path / "run"))[0].read_text()
    legend = _section(md, "## How to read the tables")
    for term in ("- hit@K —", "- ndcg@K —", "- mrr —", "- rmse —", "- mae —", "- users —"):
        assert term in legend
    assert "- same users —" in legend and "bootstrap interval" in legend
    # The raw model ids stay visible beside the readable names.
    assert f"- {LLM_LABEL} — id `train:tiny-t5`" in legend
    assert "- SASRec (BCE loss) — id `sasrec`" in legend
    settings = _section(md, "## Settings")
    assert "Data: fixture-shop — 40 users, 12 items, 200 interactions." in settings
    assert (
        "trained from scratch for 50 steps of 8 samples: 400 samples seen, 0.50 epochs of the "
        "800 training samples." in settings
    )
    assert "Task mixture: paper — training samples per task: retrieval 200," in settings
    # The history rule per protocol in words, not `None, True`.
    assert "retrieval: the user's past items are never recommended" in settings
    assert "rating: not applicable (nothing is ranked)" in settings
    assert "None" not in settings
    assert (
        "the LLM on 20 users (a seeded sample: evaluation.max_users = 20), the baselines on "
        "all 40, and again on exactly the LLM's users" in settings
    )


def test_report_verdicts_come_first(tmp_path):
    md = build_report(make_run(tmp_path / "run"))[0].read_text()
    summary = _section(md, "## Summary").strip().splitlines()
    assert summary[0] == (
        f"- Full ranking: SASRec (BCE loss) beats {LLM_LABEL} on ndcg@10: 1.0000 vs 0.5000 "
        "over the same 20 users, 0.5000 higher; 95% paired interval [+0.3000, +0.7000] "
        "excludes zero: not resampling noise."
    )
    assert summary[1].startswith(f"- Ranking candidates: {LLM_LABEL} scores ndcg@10 0.6934")
    assert summary[2].startswith(f"- Rating: biased MF beats {LLM_LABEL} on mae: 0.5000 vs")


def test_report_examples_mark_hits_and_differ(tmp_path):
    md = build_report(make_run(tmp_path / "run"))[0].read_text()
    examples = _section(md, "## Examples (test users, full ranking)")
    users = re.findall(r"^### User (\d+)$", examples, flags=re.MULTILINE)
    assert users == ["1", "2", "3"]  # a hit first, then the other category's history
    assert f"| rank | {LLM_LABEL} | SASRec (BCE loss) |" in examples
    assert "| 1 | **✔ Blue Hair Mask** | **✔ Blue Hair Mask** |" in examples
    assert "Last items (oldest first): Cedar Aftershave · Pine Shaving Cream" in examples


def test_report_html_is_self_contained_and_marks_hits(tmp_path):
    _, html_path = build_report(make_run(tmp_path / "run"))
    html = html_path.read_text()
    assert "data:image/png;base64," in html and "src='figures/" not in html
    assert "<td class='mark'>✔ Blue Hair Mask</td>" in html
    assert "<code>train:tiny-t5</code>" in html  # the raw id, as code
    assert "<li>Full ranking: SASRec (BCE loss) beats" in html


def test_report_matches_the_golden_snapshot(tmp_path):
    """The whole page for the fixture run. When a change is intended, regenerate and
    review the diff: RECALIGN_REGEN_GOLDEN=1 pytest tests/report/test_report.py"""
    md = build_report(make_run(tmp_path / "run"))[0].read_text()
    if os.environ.get("RECALIGN_REGEN_GOLDEN"):
        GOLDEN.write_text(md)
    assert md == GOLDEN.read_text()


def test_a_run_written_before_full_ranking_had_one_name_gives_the_same_report(tmp_path):
    """Baselines used to record their full ranking as protocol "full": such a run still
    reads as one full-ranking table, the same page as the golden snapshot."""
    run = make_run(tmp_path / "run")
    for name in ("sasrec", "pop"):
        path = run / "baselines" / name / "metrics.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "protocol": "full"}))
        reseal(path.parent)
    md = build_report(run)[0].read_text()
    assert md == GOLDEN.read_text()


def test_report_without_manifests_falls_back_to_raw_ids(tmp_path):
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
    md_path, html_path = build_report(_seal(run))
    md = md_path.read_text()
    assert "| tiny-t5 | 3 |" in md  # no training manifest: the raw id
    assert "0.2500 [0.1250, 0.3750]" in md  # value and its interval
    assert "| popularity | 3 |" in md  # baselines are known by name
    assert "Rating prediction" in md and "1.1000" in md
    assert "figures/full_ranking.png" in md and "figures/training.png" in md
    assert (run / "figures" / "full_ranking.png").stat().st_size > 1000
    assert "**✔ Green Soap**" in md
    assert "Last items (oldest first): Red Shampoo · Red Conditioner · Blue Serum" in md
    assert "<table>" in html_path.read_text()


def test_a_broken_or_missing_evaluation_is_a_line_not_a_dropped_row(tmp_path):
    run = make_run(tmp_path / "run")
    (run / "baselines" / "pop" / "metrics.json").write_text("{not json")
    md = build_report(run)[0].read_text()
    missing = _section(md, "### Missing results")
    assert "`baselines/pop` is not in the tables" in missing
    assert "baselines/pop/metrics.json: not the file" in missing  # altered since written
    reseal(run / "baselines" / "pop")  # recorded as it is: still unreadable JSON
    md = build_report(run)[0].read_text()
    assert "baselines/pop/metrics.json, line 1: not valid JSON" in _section(
        md, "### Missing results"
    )
    # A stage the pipeline's manifest lists whose directory is gone is named too.
    stages = {"eval-ranking": {"directory": "eval/ranking", "key": "k", "reused": False,
                               "content_hash": "c", "kind": "evaluation"}}  # fmt: skip
    reseal(run, stages=stages)
    shutil.rmtree(run / "eval" / "ranking")
    md = build_report(run)[0].read_text()
    line = next(x for x in md.splitlines() if x.startswith("- `eval/ranking`"))
    assert "eval/ranking not found" in line
    assert "redo stage eval-ranking" in line
    assert "| popularity |" not in md and "Ranking candidates" not in md


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
    # Its metrics.json is an older one, from before full ranking had one name ("full").
    _metrics(run / "baselines" / "pop", "pop", "full", {"hit@1": 2 / 3}, users=3)
    _predictions(run / "baselines" / "pop", [(1, 4, [4, 1]), (2, 4, [1, 2]), (3, 3, [3, 1])])
    _seal(run)

    llm, baselines = find_evaluations(run / "eval"), find_evaluations(run / "baselines")
    [same] = on_same_users(llm, baselines)
    assert same.model == "pop (same users)" and same.users == 2
    assert same.metrics["hit@1"] == 1.0 and same.metrics["hit@10"] == 1.0
    md = build_report(run)[0].read_text()
    assert "| popularity, same users | 2 |" in md and "| popularity | 3 |" in md
    # No extra rows when the LLM was evaluated on every user.
    _metrics(run / "eval2" / "retrieval", "tiny-t5", "retrieval", {"hit@1": 0.5}, users=3)
    _predictions(run / "eval2" / "retrieval", [(1, 4, [4]), (2, 4, [4]), (3, 3, [3])])
    _seal(run / "eval2")
    assert on_same_users(find_evaluations(run / "eval2"), baselines) == []


def test_a_cold_start_table_when_the_data_has_cold_items(tmp_path):
    """Warm and cold test cases side by side, for the LLM and every baseline row (the
    same-users re-scoring keeps the split)."""
    from recalign.evaluation.outputs import compute_metrics

    run = tmp_path / "run"
    _dataset(run / "data")
    llm = [(1, 4, [4, 3]), (2, 4, [1, 2]), (3, 3, [4, 3])]
    pop = [(1, 4, [1, 2]), (2, 4, [1, 2]), (3, 3, [3, 1]), (4, 2, [2, 1])]
    for directory, model, protocol, rows in (
        (run / "eval" / "retrieval", "tiny-t5", "retrieval", llm),
        (run / "baselines" / "pop", "pop", "retrieval", pop),
    ):
        directory.mkdir(parents=True)
        _predictions(directory, rows)
        records = [json.loads(line) for line in (directory / "predictions.jsonl").open()]
        metrics = compute_metrics(
            records, protocol=protocol, split="test", model=model, exclude_history=True,
            cold_items=[4],
        )  # fmt: skip
        (directory / "metrics.json").write_text(json.dumps(metrics))
    _seal(run)
    md = build_report(run)[0].read_text()
    section = _section(md, "### Cold-start items")
    assert "Cold items: 1, held out of training" in section
    assert _table_models(section) == ["tiny-t5", "popularity, same users", "popularity"]
    rows = {r.split(" | ")[0].removeprefix("| "): r for r in section.splitlines()[4:]}
    # the LLM: user 3 is warm (hit at rank 2), users 1 and 2 are cold (1 hit at rank 1)
    assert (
        rows["tiny-t5"].startswith("| tiny-t5 | 1 | 0.6309") and "| 2 | 0.5000" in (rows["tiny-t5"])
    )
    assert "| 2 | 0.0000" in rows["popularity, same users"]  # pop never ranks a cold item
    assert "| 2 | 0.0000" in rows["popularity"] and rows["popularity"].count("| 2 |") == 2
