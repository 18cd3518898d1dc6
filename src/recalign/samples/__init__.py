"""Training samples: prompt templates, the six tasks, the mixture, generation and export.

    generate_samples(data, out, preset="paper", seed=0, config=None,
                     shard=None, num_shards=None, family="seq2seq", workers=1) -> SamplesManifest
    merge_samples([shard_dir, ...], out) -> SamplesManifest  # shards -> unsharded samples
    build_eval_samples(dataset, task, split="test", template="default", ...) -> DataFrame
    build_prompt(task, history_texts, template="default", candidates=..., ...) -> Prompt
    render_prompt(...) -> str                        # build_prompt(...).text
    inspect_fit(samples_dir, tokenizer, family, max_source_length) -> report

Output (`out/`): `{train,valid,test}.parquet` with `task, template, user_id, input,
target, target_item` (Int64, null unless the target is one item), `candidates`
(list[int], ranking only), `items_shown` (every item id the sample mentions, for
leakage audits) and `history_bounds` (list[int32]: where the droppable history items lie
in `input`, see below); `item_texts.parquet` (item_id -> the string prompts show, for the
decoding trie); `templates/` (copies of the user's template files, if any);
`manifest.json` (a `recalign.artifacts.SamplesManifest`: the dataset's content hash,
preset, seed, family, item_repr, id_seed, max_history, domain, counts per split and
task, template versions, the resolved config, and the sha256 of every file above).

Token budgets: samples are generated before the model's tokenizer is known (tiny presets
train theirs on the samples), so prompts are stored whole and fitted where they are
encoded — training, evaluation and serving all call `models.tokenization.fit_prompts`.
For that every sample carries `history_bounds`, the UTF-8 byte offsets of its droppable
history items in `input`: `[s_0, ..., s_{n-1}, e, r]` (item starts oldest first, the end
of the newest item, and where the text resumes when all are dropped). A prompt over
budget drops the fewest oldest items that make it fit; only when its newest item alone
is still too long does that item lose the end of its text; the instruction, the
candidates and the chat frame are never cut. MIM and MLM may drop only the items before
their first masked one (the target needs the rest). Samples written before this column
existed are cut from one side as before, with a warning to regenerate them;
`recalign samples inspect` shows what fitting does for a model and budget.

Words: templates speak the dataset's domain (`recalign.data.domain`: MovieLens users
watch movies, Amazon users buy products, custom data is neutral unless `--domain` says
otherwise) through the placeholders `item_noun`, `items_noun`, `verb`, `verb_past` and
`history_noun`, which every task provides.

Choices the paper leaves open, made here:
- Positions: every train position t >= 1 is a sample position for every task (history =
  the items before t, at most `max_history`); a task's `ratio` keeps each position with
  that probability, `count` sets the ratio to count / all positions, `max_per_user` caps.
  The `paper` preset uses every position for every task but MLM (half: its prompts are
  long and repeat the same titles).
- valid / test: one sample per user and rec task (retrieval, ranking, rating), history =
  the train part (valid) or train + valid (test), template drawn from the training ones.
  `build_eval_samples` gives the same candidates with one fixed template.
- Negatives (ranking, BPR): never any item of the user's whole sequence (valid and test
  included); uniform by default, or popularity-weighted by train counts + 1.
- Ranking: K candidates (default 20) = the positive at a uniform random slot among K-1
  distinct negatives.
- MIM: a window ending at t (2..max_history items), round(0.2 x width) items (1..3, never
  all) replaced by `[MASK]`; the target lists the masked items in order.
- MLM: the last 5 titles up to t, each word masked with p = 0.15 (at least one); runs of
  masked words inside one title form a span. seq2seq: T5 sentinels (`<extra_id_i>` in the
  input, `<extra_id_0> w ... <extra_id_n>` as target); causal: `[MASK]` per span and the
  spans' words as the target. Titles, whatever `item_repr` is: MLM is about item text.
- Rating prompts show each history item as `text (rated 4)`; targets `"1"`..`"5"`
  (`format_rating`: `4.0` -> `4`, `3.5` -> `3.5`).
- Item ids (`item_repr` `id` / `id+title`): `<item_N>` with N from a seeded permutation
  of 1..num_items (`id_seed`), never the dataset's sequential ids.
- Semantic ids (`item_repr` `semantic` / `semantic+title`): `<a_i><b_j><c_k><d_n>` from
  residual k-means over the item texts' embeddings (`recalign.samples.semantic`), written
  to `semantic_ids.parquet`; the mixture config's `semantic:` block sets them.
- Cold-start items (`data prepare --cold-items`) are never drawn as negatives.
- Items in a prompt are joined by `"; "` (the config's `separator`).
- Leakage: train samples are built from the train part only, so a user's valid and test
  positions never appear in them; an item the user bought again (in the train part
  too) is history like any other.

Determinism: every random draw is a counter-based draw (`samples.draws`, SplitMix64)
keyed by (seed, task, split, user), a purpose and the sample's position, so the output
does not depend on sharding, on the block of users a user is generated with, or on which
other tasks are in the mixture; the row order is users ascending, tasks in `TASKS`
order, positions ascending. Shards are contiguous blocks of users, so merging shards
0..N-1 (`merge_samples`, or `workers=N`, which shards and merges by itself) gives the
unsharded rows.

Speed: a block of users is generated with numpy (positions, draws, negatives, masks,
item-id lists); Python only assembles each sample's text, as UTF-8 bytes, from slices of
its user's items joined once (`samples.batch`).

Memory: the prepared sequences are streamed from their file in blocks of users
(`PreparedDataset.sequence_batches`) and the samples written in row groups as they are
made, so memory does not grow with the number of users.
"""

from __future__ import annotations

from recalign.lazy import lazy_exports

# The names, by the module that defines them. Imported on first use: the mixture's schema
# (what the CLI and the run config read) must not pull the generator (polars, Arrow) in.
__all__, __getattr__ = lazy_exports(
    __name__,
    {
        "recalign.samples.mixture": ("PRESETS", "MixtureConfig", "resolve_mixture"),
        "recalign.samples.tasks": ("TASKS", "load_templates"),
        "recalign.samples.templates": ("Template", "TemplateSet"),
        "recalign.samples.evaluation": (
            "Prompt",
            "build_eval_samples",
            "build_prompt",
            "render_prompt",
        ),
        "recalign.samples.generate": ("generate_samples",),
        "recalign.samples.inspect": ("inspect_fit",),
        "recalign.samples.merge": ("merge_samples",),
    },
)
