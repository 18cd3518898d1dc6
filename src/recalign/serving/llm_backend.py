"""The language-model backend: the inference stage's protocols behind the serving protocol.

Prompts are rendered exactly as the evaluation samples render them (the task's
`default` template, the run's item representation, the dataset's domain words, the last
`max_history` items, fitted to the run's `max_source_length` by dropping whole history
items), so a served top-K equals the evaluated one for the same history:

- recommend: trie-constrained beam search over the whole catalogue, the history banned
  *inside* the search (`constrained_retrieval`; `recalign.ranking.banned_items` says
  which items), beams = max(`num_beams`, k);
- rank: log-likelihood of each candidate's answer ids after the ranking prompt (which
  lists the candidates in the caller's order);
- rate: expected value over the answers "1".."5" after the rating prompt.

What the run was trained with (item representation, id seed, history length, template
files, tasks, prompt budget) is what its manifest records (`RunDir.prompt_settings`,
the reader the evaluator uses too).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from recalign.artifacts.prompt import default_max_history
from recalign.constants import ITEM_ID
from recalign.errors import RecalignError
from recalign.ranking import banned_items
from recalign.serving.backends import (
    LLM_SCORE_MEANING,
    Histories,
    TopK,
    UnsupportedOperationError,
)

if TYPE_CHECKING:
    from recalign.samples.semantic import Codebook

logger = logging.getLogger(__name__)

DEFAULT_NUM_BEAMS = 20  # DESIGN.md: beams >= K, default 20
DEFAULT_MAX_HISTORY = default_max_history()  # the samples stage's default


class LLMBackend:
    """A fine-tuned seq2seq or causal LM, scored through `recalign.inference`."""

    kind = "llm"
    score_meaning = LLM_SCORE_MEANING

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        family: str,
        dataset: Any,
        *,
        name: str = "llm",
        item_repr: str = "title",
        id_seed: int = 0,
        max_history: int = DEFAULT_MAX_HISTORY,
        template: str = "default",
        num_beams: int = DEFAULT_NUM_BEAMS,
        batch_size: int = 16,
        can_rate: bool | None = None,
        trie_cache_dir: str | Path | None = None,
        templates: Any = None,
        max_source_length: int | None = None,
        codes: list[str] | None = None,
        codebook: Callable[[], Codebook] | None = None,
    ) -> None:
        from recalign.inference.trie import item_trie_for
        from recalign.samples.representation import item_representations

        self.model = model
        self.tokenizer = tokenizer
        self.family = family
        self.name = name
        self.template = template
        self.templates = templates  # a TemplateSet; None: the shipped templates
        self.max_history = max_history
        self.max_source_length = max_source_length  # prompt tokens; None: no fitting
        self.domain = dataset.domain
        self.num_beams = num_beams
        self.batch_size = batch_size
        self.can_rate = dataset.has_ratings if can_rate is None else can_rate
        # reprs[i]: the string shown for item i in prompts and answers (index 0 unused).
        self.reprs = item_representations(dataset.item_texts, item_repr, id_seed, codes)
        self.item_repr = item_repr
        self.codes = list(codes) if codes is not None else None
        self._codebook_source = codebook  # read when the first new item needs a code
        self._codebook: Codebook | None = None
        self._embedder: Any = None
        item_ids = dataset.items.get_column(ITEM_ID).to_list()
        self.trie = item_trie_for(
            tokenizer, family, item_ids, [self.reprs[i] for i in item_ids], cache_dir=trie_cache_dir
        )
        self.num_items = len(item_ids)

    @classmethod
    def from_run(cls, run: Any, dataset: Any, *, device: str | None = None) -> LLMBackend:
        """The backend of a training run (`recalign.artifacts.RunDir`) over `dataset`."""
        from recalign.models.loading import load_run_model

        try:
            loaded = load_run_model(run.path, device=device)
        except RecalignError:
            raise
        except (OSError, ValueError, KeyError) as error:
            raise RecalignError(f"cannot load the model of {run.path}: {error}") from None
        prompt = run.prompt_settings()
        model_spec = run.manifest.model
        return cls(
            loaded.model,
            loaded.tokenizer,
            loaded.family,
            dataset,
            name=str(model_spec.get("source") or model_spec.get("preset") or run.path.name),
            item_repr=prompt.item_repr,
            id_seed=prompt.id_seed,
            max_history=prompt.max_history,
            can_rate="rating" in (prompt.tasks or ()),
            templates=prompt.load_templates() if prompt.templates else None,
            max_source_length=prompt.max_source_length,
            codes=prompt.item_codes(len(dataset.item_texts) - 1),
            codebook=prompt.codebook,
        )

    # --- prompts ---------------------------------------------------------------------
    def _history_reprs(self, history: Sequence[int]) -> list[str]:
        return [self.reprs[int(i)] for i in list(history)[-self.max_history :]]

    def _encode(self, task: str, history: Sequence[int], **extra: Any) -> list[int]:
        """The task's prompt for a history, fitted to the run's budget."""
        from recalign.models.tokenization import fit_prompt
        from recalign.samples.evaluation import build_prompt

        prompt = build_prompt(
            task,
            self._history_reprs(history),
            template=self.template,
            templates=self.templates,
            domain=self.domain,
            **extra,
        )
        return fit_prompt(
            self.tokenizer, self.family, prompt.text, prompt.bounds, self.max_source_length
        )

    # --- the protocol ------------------------------------------------------------------
    def recommend(self, histories: Histories, k: int, exclude_history: bool) -> list[TopK]:
        from recalign.inference.retrieval import constrained_retrieval

        k = min(k, self.num_items)
        prompts = [self._encode("retrieval", h) for h in histories]
        banned = banned_items(histories, exclude_history)
        found = constrained_retrieval(
            self.model,
            self.tokenizer,
            self.family,
            self.trie,
            prompts,
            banned,
            k=k,
            num_beams=max(self.num_beams, k),
            batch_size=self.batch_size,
        )
        return [
            (np.asarray(r.items, dtype=np.int64), np.asarray(r.scores, dtype=np.float64))
            for r in found
        ]

    def rank(self, histories: Histories, candidates: Sequence[Sequence[int]]) -> list[np.ndarray]:
        from recalign.inference.scoring import score_candidates
        from recalign.models.tokenization import encode_answer

        out = []
        for history, cands in zip(histories, candidates, strict=True):
            texts = [self.reprs[int(c)] for c in cands]
            prompt = self._encode("ranking", history, candidates=texts)
            answers = [encode_answer(self.tokenizer, self.family, t) for t in texts]
            out.append(score_candidates(self.model, self.tokenizer, self.family, prompt, answers))
        return out

    def rate(
        self,
        histories: Histories,
        items: Sequence[int],
        ratings: Sequence[Sequence[float] | None],
    ) -> np.ndarray:
        from recalign.inference.scoring import predict_ratings

        if not self.can_rate:
            raise UnsupportedOperationError(
                f"the model {self.name!r} was not trained with the rating task "
                "(or its dataset has no ratings), so it cannot predict ratings"
            )
        prompts = []
        for history, item, rated in zip(histories, items, ratings, strict=True):
            if rated is None:
                raise UnsupportedOperationError(
                    "the rating prompt shows the user's ratings of the history items: "
                    "send `ratings`, one per history item"
                )
            prompts.append(
                self._encode(
                    "rating",
                    history,
                    item=self.reprs[int(item)],
                    ratings=list(rated)[-self.max_history :],
                )
            )
        return np.asarray(
            predict_ratings(self.model, self.tokenizer, self.family, prompts), dtype=np.float64
        )

    # --- items added while serving ----------------------------------------------------
    def add_items(self, item_ids: Sequence[int], texts: Sequence[str]) -> list[str]:
        """Make new items recommendable without retraining; returns how each is shown.

        A title is shown as itself, so the trained model reads and writes it like any
        other; a semantic id comes from the catalogue's codebook (`Codebook.assign`:
        the nearest centroid at each level, so a new text shares its code's prefix with
        the items its text is close to). Random id tokens carry nothing the model could
        have learnt about a new item, so those runs refuse. Nothing changes unless every
        item is added (the trie is rebuilt aside, then swapped in).
        """
        from recalign.models.tokenization import encode_answers
        from recalign.samples.representation import is_semantic

        if self.item_repr in ("id", "id+title"):
            raise UnsupportedOperationError(
                f"the model {self.name!r} shows items as id tokens ({self.item_repr!r}), "
                "and a new item's id token means nothing to it: new items need a run "
                "trained with item_repr title, semantic or semantic+title"
            )
        if len(item_ids) != len(texts):
            raise ValueError("one text per new item id is needed")
        if any(int(i) != self.num_items + 1 + n for n, i in enumerate(item_ids)):
            raise ValueError(f"new item ids continue the catalogue: {self.num_items + 1}, ...")
        codes = None
        if is_semantic(self.item_repr):
            codes = self._new_codes(texts)
            shown = (
                codes
                if self.item_repr == "semantic"
                else [f"{code} {text}" for code, text in zip(codes, texts, strict=True)]
            )
        else:
            shown = [str(t) for t in texts]
        trie = self.trie.with_items(encode_answers(self.tokenizer, self.family, shown), item_ids)
        self.trie = trie
        self.reprs.extend(shown)
        if codes is not None and self.codes is not None:
            self.codes.extend(codes)
        self.num_items += len(shown)
        return shown

    def _new_codes(self, texts: Sequence[str]) -> list[str]:
        """Semantic ids for new texts; tokens the model lacks are added (see below)."""
        from recalign.samples.semantic import code_tokens, get_embedder

        if self._codebook is None:
            if self._codebook_source is None:
                raise UnsupportedOperationError(
                    f"the model {self.name!r} has no semantic-id codebook to give new items codes"
                )
            self._codebook = self._codebook_source()
            self._embedder = get_embedder(self._codebook.config)
        codes = self._codebook.assign(texts, self.codes or [], self._embedder)
        vocab = self.tokenizer.get_vocab()
        missing = [t for t in code_tokens(codes) if t not in vocab]
        if missing:
            # Only a last (uniqueness) level can run past what training saw: a prefix
            # already holding as many items as the busiest one did. Its new token starts
            # at the mean of the embeddings, as training's added tokens do.
            logger.warning(
                "adding %d code token(s) the model was not trained on (%s): items using "
                "them are harder for it to produce",
                len(missing),
                ", ".join(missing[:5]),
            )
            if hasattr(self.model, "merge_and_unload"):
                # A LoRA run's embeddings sit inside peft's wrappers, which cannot grow:
                # merge the adapter into the weights (the same function, up to rounding).
                logger.info("merging the LoRA adapter into the model to add code tokens")
                self.model = self.model.merge_and_unload()
            self.tokenizer.add_tokens(missing)
            self.model.resize_token_embeddings(len(self.tokenizer), mean_resizing=True)
        return codes
