"""A small, complete run directory with known numbers, written through the real writers.

40 test users: odd ids buy hair care, even ids shaving products (so their histories
differ in words). The LLM is evaluated on users 1..20 (a "sample", as `max_users`
does); the baselines on all 40.

    full ranking   LLM: target at rank 1 for users 1..10, absent for 11..20 -> ndcg@10 0.5
                   SASRec (BCE): rank 1 for everyone -> 1.0; popularity: rank 2 -> 0.6309
    ranking        LLM: 20 candidates, rank 1 for users 1..10, rank 5 for 11..20
    rating         LLM: error 1.0 for everyone; biased MF 0.5; global mean 1.0
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from recalign.artifacts import PromptRecord, RunManifest, SamplesDir, seal
from recalign.evaluation.outputs import write_evaluation
from tests.factories import fake_pipeline, fake_samples, write_dataset

HAIR = ["Red Shampoo", "Red Conditioner", "Red Hair Mask", "Blue Shampoo", "Blue Conditioner",
        "Blue Hair Mask"]  # fmt: skip
SHAVE = ["Cedar Shaving Cream", "Cedar Beard Oil", "Cedar Aftershave", "Pine Shaving Cream",
         "Pine Beard Oil", "Pine Aftershave"]  # fmt: skip
USERS = list(range(1, 41))
LLM_USERS = USERS[:20]
LLM_LABEL = "tiny-t5 (trained from scratch, paper mixture)"


def sequence(user: int) -> list[int]:
    base = 1 if user % 2 else 7  # hair care items 1..6, shaving items 7..12
    return [base + (user + k) % 6 for k in range(5)]


def target(user: int) -> int:
    return sequence(user)[-1]


def others(user: int, n: int = 5) -> list[int]:
    """Items of the other category: never the user's own."""
    base = 7 if user % 2 else 1
    return [base + k for k in range(n)]


def _data(run: Path) -> str:
    dataset = write_dataset(
        run / "data",
        [sequence(u) for u in USERS],
        HAIR + SHAVE,
        ratings=[[4.0] * 5 for _ in USERS],
        name="fixture-shop",
        source_prefix="s",
        item_columns={"text_source": ["title"] * 12, "disambiguated": [False] * 12},
    )
    return dataset.data_hash


def _ranking(users, rank_of) -> list[dict]:
    records = []
    for user in users:
        rank = rank_of(user)
        ranked = others(user)
        if rank:
            ranked = [*ranked[: rank - 1], target(user), *ranked[rank - 1 :]]
        records.append({"user_id": user, "target": target(user), "ranked": ranked})
    return records


def _llm(run: Path, data_hash: str, protocol: str, records: list[dict], **options) -> None:
    write_evaluation(
        run / "eval" / protocol,
        records,
        protocol=protocol,
        split="test",
        model="train:tiny-t5",
        exclude_history=None if protocol == "rating" else True,
        extra={
            "options": {"protocol": protocol, "max_users": 20, "k": 5, **options},
            "run_dir": str(run / "train"),
            "data_hash": data_hash,
            "family": "seq2seq",
        },
    )


def _baseline(
    run: Path, data_hash: str, name: str, protocol: str, records: list[dict], **config
) -> None:
    write_evaluation(
        run / "baselines" / name,
        records,
        protocol=protocol,
        split="test",
        model=name,
        exclude_history=None if protocol == "rating" else True,
        extra={"config": {"baseline": name, "k": 5, **config}, "data_hash": data_hash},
    )


def _rating(users, error: float) -> list[dict]:
    return [
        {"user_id": u, "item": target(u), "rating": 4.0, "prediction": 4.0 + error} for u in users
    ]


def _training(run: Path) -> None:
    """A finished training run (its manifest, config, log; no weights: the report reads
    none) made from `run/samples`."""
    fake_samples(
        run / "data",
        run / "samples",
        preset="paper",
        counts={"retrieval": 200, "ranking": 200, "rating": 200, "mim": 200},
    )
    (run / "train").mkdir(parents=True)
    (run / "train" / "config.yaml").write_text(yaml.safe_dump({"batch_size": 8, "grad_accum": 1}))
    (run / "train" / "train_log.jsonl").write_text(
        "\n".join(json.dumps({"step": s, "loss": 3.0 / s}) for s in range(1, 6))
    )
    samples = SamplesDir.open(run / "samples")
    seal(
        run / "train",
        RunManifest(
            model={"source": "tiny-t5", "preset": "tiny-t5"},
            family="seq2seq",
            inputs={
                "samples": samples.record_for(run / "train"),
                "dataset": samples.manifest.inputs["dataset"].model_copy(
                    update={"path": "../data"}
                ),
            },
            prompt=PromptRecord(
                item_repr="title",
                max_history=20,
                id_seed=0,
                separator="; ",
                tasks=list(samples.manifest.tasks),
                preset="paper",
                max_source_length=256,
            ),
            train_samples=800,
            steps_done=50,
            status="done",
        ),
    )


def make_run(run: Path, llm_users: list[int] = LLM_USERS) -> Path:
    """Write the fixture run directory at `run` and return it (the LLM on `llm_users`)."""
    data_hash = _data(run)
    _training(run)
    config = {
        "name": "fixture",
        "seed": 0,
        "data": {"name": "fixture-shop"},
        "model": {"spec": "tiny-t5"},
        "samples": {"preset": "paper"},
        "evaluation": {"max_users": 20, "split": "test"},
    }
    fake_pipeline(run, name="fixture", config=config)
    _llm(
        run, data_hash, "retrieval", _ranking(llm_users, lambda u: 1 if u <= 10 else 0), num_beams=4
    )
    _llm(
        run,
        data_hash,
        "ranking",
        _ranking(llm_users, lambda u: 1 if u <= 10 else 5),
        num_candidates=20,
    )
    _llm(run, data_hash, "rating", _rating(llm_users, 1.0))
    _baseline(run, data_hash, "sasrec", "retrieval", _ranking(USERS, lambda u: 1), loss="bce")
    _baseline(run, data_hash, "pop", "retrieval", _ranking(USERS, lambda u: 2))
    _baseline(run, data_hash, "biased-mf", "rating", _rating(USERS, 0.5))
    _baseline(run, data_hash, "global-mean", "rating", _rating(USERS, -1.0))
    return run
