"""Retrieval decoding speed: the fast trie-constrained beam search vs `generate(prefix_allowed_tokens_fn)`.

Default: a tiny T5 (random init, MACHINE.md's "tiny": d_model 128, 2+2 layers, vocab 8k),
Beauty's 12,101 item texts when ../shared/data is there, else 12,000 synthetic titles,
and the retrieval evaluation prompts of Beauty's test users. With `--model DIR --data
DATA`: any model `recalign.models.loading.load_model` takes (seq2seq or causal, e.g. an
imported SmolLM2 directory), on a prepared dataset's catalogue and the retrieval
evaluation prompts of its test users (the evaluator's default prompt settings; a chat
model's prompts go through its chat template). 20 beams, K = 20. Both paths run in this
process on the same users, alternating, and each is timed as the median of `--repeats`
runs.

The quality check is the agreement of the top-K lists on the users both paths decode
(exact list equality and mean overlap@10); HR@10 is printed too (meaningless for a
random-init model).

    python bench/bench_decode.py [--ref-users 16] [--fast-users 128] [--device cpu]
    python bench/bench_decode.py --model models/smollm2-135m --data data/ml100k \
        --ref-users 4 --fast-users 8 --batch-size 4 --repeats 2 --threads 1

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BEAUTY_TEST_USERS = 22363


def _data_dir() -> Path:
    env = os.environ.get("RECALIGN_DATA_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


def _synthetic(
    n_items: int, n_users: int, seed: int
) -> tuple[list[str], list[list[int]], list[int]]:
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(3000)]
    texts: set[str] = set()
    while len(texts) < n_items:
        texts.add(" ".join(rng.choice(words, size=int(rng.integers(4, 14)))))
    histories = [
        rng.integers(1, n_items + 1, size=int(rng.integers(3, 10))).tolist() for _ in range(n_users)
    ]
    targets = rng.integers(1, n_items + 1, size=n_users).tolist()
    return sorted(texts), histories, targets


def load_workload(n_users: int, seed: int) -> dict:
    """Item texts, prompts (as text), histories to ban and targets."""
    source = _data_dir() / "amazon2014" / "beauty"
    if source.is_dir():
        from recalign.data.prepare import prepare_dataset
        from recalign.samples.evaluation import build_eval_samples

        with tempfile.TemporaryDirectory() as tmp:
            dataset = prepare_dataset("amazon2014-beauty", Path(tmp) / "beauty", source=source)
            samples = build_eval_samples(dataset, "retrieval", "test", max_users=n_users, seed=seed)
            texts = [str(t) for t in dataset.item_texts[1:]]
        return {
            "catalogue": "amazon2014-beauty",
            "texts": texts,
            "item_ids": list(range(1, len(texts) + 1)),
            "prompts": samples.get_column("input").to_list(),
            "histories": samples.get_column("full_history").to_list(),
            "targets": samples.get_column("target_item").to_list(),
        }
    texts, histories, targets = _synthetic(12000, n_users, seed)
    prompts = [
        "A user has bought these items, in order: "
        + "; ".join(texts[i - 1] for i in h)
        + ". Which item will the user buy next?"
        for h in histories
    ]
    return {
        "catalogue": "synthetic-12000",
        "texts": texts,
        "item_ids": list(range(1, len(texts) + 1)),
        "prompts": prompts,
        "histories": histories,
        "targets": targets,
    }


def load_dataset_workload(data_dir: Path, n_users: int, seed: int) -> dict:
    """A prepared dataset's catalogue and its test users' retrieval evaluation prompts."""
    from recalign.artifacts import PromptSettings
    from recalign.data.store import load_prepared
    from recalign.samples.evaluation import build_eval_samples
    from recalign.samples.representation import item_representations

    prompt = PromptSettings()
    dataset = load_prepared(data_dir)
    samples = build_eval_samples(
        dataset,
        "retrieval",
        "test",
        max_users=n_users,
        seed=seed,
        item_repr=prompt.item_repr,
        max_history=prompt.max_history,
        id_seed=prompt.id_seed,
    )
    reprs = item_representations(dataset.item_texts, prompt.item_repr, seed=prompt.id_seed)
    item_ids = dataset.items.get_column("item_id").to_list()
    return {
        "catalogue": dataset.name,
        "texts": [reprs[i] for i in item_ids],
        "item_ids": item_ids,
        "prompts": samples.get_column("input").to_list(),
        "histories": samples.get_column("full_history").to_list(),
        "targets": samples.get_column("target_item").to_list(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref-users", type=int, default=16)
    parser.add_argument("--fast-users", type=int, default=128)
    parser.add_argument("--beams", type=int, default=20)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--ref-batch-size", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--model", default=None, help="a model load_model takes (default: tiny T5)")
    parser.add_argument("--data", type=Path, default=None, help="a prepared dataset (with --model)")
    parser.add_argument(
        "--generic-too",
        action="store_true",
        help="causal models: also time the fast search on the generic CausalSession "
        "(one KV-cache row per beam) instead of LlamaSession, on the reference's users",
    )
    args = parser.parse_args()
    if (args.model is None) != (args.data is None):
        parser.error("--model and --data go together")

    import torch

    load_start = os.getloadavg()
    if args.threads:
        torch.set_num_threads(args.threads)

    from recalign.inference.reference import reference_retrieval
    from recalign.inference.retrieval import constrained_retrieval
    from recalign.inference.trie import item_trie_for
    from recalign.models.tiny import build_tiny_t5, train_tokenizer
    from recalign.models.tokenization import encode_prompts

    t0 = time.perf_counter()
    n_users = max(args.fast_users, args.ref_users)
    if args.model is None:
        work = load_workload(n_users, args.seed)
    else:
        work = load_dataset_workload(args.data, n_users, args.seed)
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    if args.model is None:
        tokenizer = train_tokenizer(work["texts"] + work["prompts"][:50], vocab_size=8000)
        torch.manual_seed(args.seed)
        model, family = build_tiny_t5(tokenizer), "seq2seq"
        model_name = "tiny-t5 random init (d_model 128, 2+2 layers, vocab 8k)"
    else:
        from recalign.models.loading import load_model

        loaded = load_model(args.model)
        model, tokenizer, family = loaded.model, loaded.tokenizer, loaded.family
        model_name = (
            f"{args.model} ({family}, {sum(p.numel() for p in model.parameters()):,} parameters)"
        )
    model = model.to(args.device).eval()
    tokenizer_s = time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as cache:
        t0 = time.perf_counter()
        trie = item_trie_for(tokenizer, family, work["item_ids"], work["texts"], cache_dir=cache)
        trie_build_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        item_trie_for(tokenizer, family, work["item_ids"], work["texts"], cache_dir=cache)
        trie_cached_s = time.perf_counter() - t0
    _ = trie.forced_run, trie.leaf_count  # derived tables, built once per trie

    prompts = encode_prompts(tokenizer, family, work["prompts"])
    histories, targets = work["histories"], work["targets"]
    common = dict(k=args.k, num_beams=args.beams)
    n_ref, n_fast = args.ref_users, args.fast_users

    def run_fast(n: int):
        return constrained_retrieval(
            model,
            tokenizer,
            family,
            trie,
            prompts[:n],
            histories[:n],
            batch_size=args.batch_size,
            **common,
        )

    def run_generic(n: int):
        """The fast search on the generic causal session (what LlamaSession replaced)."""
        from recalign.inference import llama_session

        shared = llama_session.supports_prefix_sharing
        llama_session.supports_prefix_sharing = lambda model: False
        try:
            return run_fast(n)
        finally:
            llama_session.supports_prefix_sharing = shared

    def run_ref(n: int):
        return reference_retrieval(
            model,
            tokenizer,
            family,
            trie,
            prompts[:n],
            histories[:n],
            batch_size=args.ref_batch_size,
            **common,
        )

    fast_times, ref_times, fast_small_times, generic_times = [], [], [], []
    generic = None
    for _ in range(args.repeats):
        if args.generic_too and family == "causal":
            t0 = time.perf_counter()
            generic = run_generic(n_ref)
            generic_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ref = run_ref(n_ref)
        ref_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        fast_small = run_fast(n_ref)
        fast_small_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        fast = run_fast(n_fast)
        fast_times.append(time.perf_counter() - t0)

    same = [f.items == r.items for f, r in zip(fast_small, ref, strict=True)]
    overlap = [
        len(set(f.items[:10]) & set(r.items[:10])) / 10
        for f, r in zip(fast_small, ref, strict=True)
    ]
    score_gap = max(
        (
            abs(a - b)
            for f, r in zip(fast_small, ref, strict=True)
            for a, b in zip(f.scores, r.scores, strict=False)
        ),
        default=0.0,
    )

    def hr10(results, n):
        return float(
            np.mean([t in r.items[:10] for r, t in zip(results, targets[:n], strict=True)])
        )

    fast_ups = n_fast / statistics.median(fast_times)
    ref_ups = n_ref / statistics.median(ref_times)
    fast_small_ups = n_ref / statistics.median(fast_small_times)
    if generic is not None:
        generic_ups = n_ref / statistics.median(generic_times)
        generic_report = {
            "generic_session_users_per_s_same_users": round(generic_ups, 3),
            "speedup_same_users_vs_generic_session": round(fast_small_ups / generic_ups, 2),
            "generic_session_speedup_vs_reference": round(generic_ups / ref_ups, 2),
            "generic_session_topk_identical_fraction": float(
                np.mean([g.items == r.items for g, r in zip(generic, ref, strict=True)])
            ),
        }
    else:
        generic_report = {}
    report = {
        "bench": "decode",
        "device": args.device,
        "torch_threads": torch.get_num_threads(),
        "catalogue": work["catalogue"],
        "num_items": trie.num_items,
        "trie_nodes": trie.num_nodes,
        "mean_answer_tokens": round(float(trie.depth[trie.item_leaf].mean()), 2),
        "model": model_name,
        "family": family,
        "mean_prompt_tokens": round(float(np.mean([len(p) for p in prompts[:n_fast]])), 1),
        "load_average_start": [round(x, 2) for x in load_start],
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "beams": args.beams,
        "k": args.k,
        "exclude_history": True,
        "users_reference": n_ref,
        "users_fast": n_fast,
        "repeats": args.repeats,
        "reference_users_per_s": round(ref_ups, 3),
        "fast_users_per_s_same_users": round(fast_small_ups, 3),
        "fast_users_per_s": round(fast_ups, 3),
        "speedup_same_users": round(fast_small_ups / ref_ups, 2),
        "speedup": round(fast_ups / ref_ups, 2),
        "topk_identical_fraction": float(np.mean(same)),
        **generic_report,
        "mean_overlap_at_10": float(np.mean(overlap)),
        "max_score_difference": score_gap,
        "hr@10_reference": hr10(ref, n_ref),
        "hr@10_fast_same_users": hr10(fast_small, n_ref),
        "hr@10_fast": hr10(fast, n_fast),
        "projected_beauty_test_minutes_fast": round(BEAUTY_TEST_USERS / fast_ups / 60, 1),
        "projected_beauty_test_minutes_reference": round(BEAUTY_TEST_USERS / ref_ups / 60, 1),
        "trie_build_s": round(trie_build_s, 3),
        "trie_cached_load_s": round(trie_cached_s, 3),
        "workload_s": round(load_s, 2),
        "model_setup_s": round(tokenizer_s, 2),
        "times_fast_s": [round(t, 3) for t in fast_times],
        "times_generic_session_s": [round(t, 3) for t in generic_times],
        "times_reference_s": [round(t, 3) for t in ref_times],
    }
    json.dump(report, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
