"""HF `Trainer` with our samplers and a best-model reload that understands tied weights."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from transformers import Trainer

from recalign.training.sampler import LengthGroupedSampler, LongestFirstSampler, ShuffleSampler

logger = logging.getLogger(__name__)


def checkpoint_keys(folder: Path) -> set[str]:
    """The tensor names a checkpoint folder holds (one safetensors file or a sharded index)."""
    single, index = folder / "model.safetensors", folder / "model.safetensors.index.json"
    if single.is_file():
        from safetensors import safe_open

        with safe_open(str(single), framework="pt") as handle:
            return set(handle.keys())
    if index.is_file():
        from recalign.fileio import read_json_object

        return set(read_json_object(index).get("weight_map", {}))
    return set()


def tied_aliases(model: Any, loaded: set[str], missing: list[str]) -> set[str]:
    """The `missing` keys that share their tensor with a key in `loaded`.

    `save_pretrained` writes each tensor once, so a checkpoint of a model with tied
    embeddings (T5's encoder/decoder `embed_tokens` and `lm_head`, Llama's `lm_head`)
    holds only the `shared` / `embed_tokens` key. Loading it with `load_state_dict`
    fills the aliases too (they are the same tensor), but reports them as missing.
    """
    state = model.state_dict(keep_vars=True)
    pointers = {state[key].data_ptr() for key in loaded if key in state}
    return {key for key in missing if key in state and state[key].data_ptr() in pointers}


class RecalignTrainer(Trainer):
    """`Trainer` whose train and eval orders come from a length array, not from the data.

    `lengths` / `eval_lengths` are the per-sample lengths (see `training.stream`);
    `batching` is "length_grouped" or "random".
    """

    def __init__(
        self,
        *args: Any,
        lengths: Any,
        eval_lengths: Any,
        batching: str,
        sampler_seed: int,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._lengths = lengths
        self._eval_lengths = eval_lengths
        self._batching = batching
        self._sampler_seed = sampler_seed
        self._train_sampler: Any = None
        self._loaded_keys: set[str] = set()

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        if self._batching == "length_grouped":
            batch = self.args.train_batch_size * self.args.gradient_accumulation_steps
            sampler: Any = LengthGroupedSampler(self._lengths, batch, self._sampler_seed)
        else:
            sampler = ShuffleSampler(self._lengths, self._sampler_seed)
        self._train_sampler = sampler
        return sampler

    def _get_eval_sampler(self, eval_dataset: Any) -> Any:
        if eval_dataset is None or len(eval_dataset) != len(self._eval_lengths):
            return super()._get_eval_sampler(eval_dataset)  # another dataset, passed in
        return LongestFirstSampler(self._eval_lengths)

    def _run_epoch(self, *args: Any, **kwargs: Any) -> Any:
        # accelerate forwards `set_epoch` to the sampler except through a resumed run's
        # batch-skipping wrapper around a multi-process shard; set it here as well.
        if self._train_sampler is not None and "epoch" in kwargs:
            self._train_sampler.set_epoch(kwargs["epoch"])
        return super()._run_epoch(*args, **kwargs)

    def _load_best_model(self) -> None:
        self._loaded_keys = checkpoint_keys(Path(self.state.best_model_checkpoint or "."))
        super()._load_best_model()

    def _issue_warnings_after_load(self, load_result: Any) -> None:
        aliases = tied_aliases(self.model, self._loaded_keys, list(load_result.missing_keys))
        if aliases:
            logger.debug("tied weights loaded through their source key: %s", sorted(aliases))
            load_result.missing_keys[:] = [k for k in load_result.missing_keys if k not in aliases]
        super()._issue_warnings_after_load(load_result)
