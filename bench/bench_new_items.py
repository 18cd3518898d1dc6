"""Adding items to a served language model: what one addition costs, against a rebuild.

A server that takes new items (`POST /items`, `recalign serve --new-items`) rebuilds its
item trie with them and swaps it in. This measures, on Amazon Beauty's 12,101 titles
(or 12,000 synthetic titles without ../shared/data) and a tiny random-init T5 with the
real T5 tokenizer:

- baseline: building the trie of the whole catalogue from its texts (tokenising every
  answer + `build_trie`), what a restart over a dataset holding the new items would
  spend before its first request (model loading not counted);
- adding 1 item and adding 100 items through `Recommender.add_items`, for `title` and
  `semantic` (codes from the catalogue's codebook; embedding the new texts included);
- one `/recommend`-sized call (1 user, k 10, 20 beams) before and after 100 additions.

Each figure is the median of `--repeats` runs in this process; the ratios are to the
baseline measured in the same run.

    python bench/bench_new_items.py [--repeats 5] [--embedder all-minilm-l6-v2|hashing]
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

REPO = Path(__file__).resolve().parents[1]


def data_root() -> Path:
    return Path(os.environ.get("RECALIGN_DATA_DIR", REPO.parent / "shared" / "data"))


def catalogue(work: Path):
    """A prepared dataset: Beauty when the data is there, else the synthetic shop."""
    from recalign.data.prepare import prepare_dataset
    from recalign.data.store import load_prepared

    source = data_root() / "amazon2014" / "beauty"
    if source.is_dir():
        prepare_dataset("amazon2014-beauty", work / "data", source)
    else:
        prepare_dataset("synthetic", work / "data", None, num_users=2000, num_items=12000)
    return load_prepared(work / "data")


def tiny_t5():
    from transformers import AutoTokenizer, T5Config, T5ForConditionalGeneration

    tokenizer = AutoTokenizer.from_pretrained(
        REPO.parent / "shared" / "models" / "t5-small-tokenizer"
    )
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=128,
        d_ff=512,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=4,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    return T5ForConditionalGeneration(config).eval(), tokenizer


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def median_time(repeats: int, fn, *args) -> float:
    return statistics.median(timed(fn, *args) for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--embedder", default="all-minilm-l6-v2")
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    import torch

    from recalign.inference.trie import build_trie
    from recalign.models.tokenization import encode_answers
    from recalign.samples.semantic import SemanticConfig, catalogue_semantic_ids, code_tokens
    from recalign.serving import ItemCatalog, Recommender
    from recalign.serving.llm_backend import LLMBackend

    torch.manual_seed(0)
    work = args.work or Path(tempfile.mkdtemp(prefix="recalign-new-items-"))
    dataset = catalogue(work)
    model, tokenizer = tiny_t5()
    texts = [str(t) for t in dataset.item_texts.tolist()[1:]]
    rng = np.random.default_rng(0)
    counter = iter(range(10**9))

    def fresh_texts(n: int) -> list[str]:
        # new titles: a catalogue title with its words shuffled and a serial number
        out = []
        for _ in range(n):
            words = texts[int(rng.integers(len(texts)))].split()
            rng.shuffle(words)
            out.append(f"{' '.join(words)} #{next(counter)}")
        return out

    results: dict = {"items": len(texts), "repeats": args.repeats}

    def rebuild() -> None:
        answers = encode_answers(tokenizer, "seq2seq", texts)
        build_trie(answers, list(range(1, len(texts) + 1)), tokenizer.eos_token_id)

    rebuild()  # warm the tokenizer
    base = median_time(args.repeats, rebuild)
    results["baseline_full_trie_build_s"] = round(base, 3)

    for repr_ in ("title", "semantic"):
        codes = codebook = None
        if repr_ == "semantic":
            config = SemanticConfig(embedder=args.embedder)
            ids = catalogue_semantic_ids(dataset.item_texts.tolist(), config)
            codes, codebook = ["", *ids.strings()], ids.codebook
            tokens = code_tokens(codes[1:])
            tokenizer_r = tokenizer.__class__.from_pretrained(
                REPO.parent / "shared" / "models" / "t5-small-tokenizer"
            )
            tokenizer_r.add_tokens(tokens)
            model_r = tiny_t5()[0]
            model_r.resize_token_embeddings(len(tokenizer_r))
        else:
            tokenizer_r, model_r = tokenizer, model
        start = time.perf_counter()
        backend = LLMBackend(
            model_r,
            tokenizer_r,
            "seq2seq",
            dataset,
            name="tiny-t5",
            item_repr=repr_,
            codes=codes,
            codebook=(lambda cb=codebook: cb) if codebook is not None else None,
            trie_cache_dir=work / "tries",
        )
        load_s = time.perf_counter() - start
        rec = Recommender(backend, ItemCatalog.from_dataset(dataset))
        vocabulary = len(tokenizer_r)
        rec.add_items(fresh_texts(1))  # first addition: loads the embedder
        history = [[1, 2, 3]]
        before = median_time(args.repeats, rec.recommend_ids, history, 10)
        one = [timed(rec.add_items, fresh_texts(1)) for _ in range(args.repeats)]
        hundred = [timed(rec.add_items, fresh_texts(100)) for _ in range(3)]
        after = median_time(args.repeats, rec.recommend_ids, history, 10)
        results[repr_] = {
            "backend_load_s": round(load_s, 3),
            "add_1_s": round(statistics.median(one), 3),
            "add_1_vs_baseline": round(statistics.median(one) / base, 3),
            "add_100_s": round(statistics.median(hundred), 3),
            "add_100_vs_baseline": round(statistics.median(hundred) / base, 3),
            "recommend_before_s": round(before, 3),
            "recommend_after_s": round(after, 3),
            "items_now": len(rec.catalog),
            "trie_items": backend.trie.num_items,
            "tokens_added": len(tokenizer_r) - vocabulary,
        }
        print(json.dumps({repr_: results[repr_]}), file=sys.stderr, flush=True)
    results["loadavg"] = os.getloadavg()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
