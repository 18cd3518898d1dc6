"""What a dataset's items are and what its users do with them: the words prompts use.

MovieLens users watch movies, Amazon users buy products; a prompt that speaks of a
"purchase history" of films teaches a model the wrong domain. A dataset's reader sets
its `Domain`, `prepare` records it in the prepared dataset's `manifest.json` (`domain`),
sample generation reads it, and every template says its words through placeholders:

    item_noun     movie / product / item           "Which {{ item_noun }} ..."
    items_noun    movies / products / items        "these {{ items_noun }}"
    verb          watch / buy / interact with      "will the user {{ verb }} next?"
    verb_past     watched / bought / interacted with
    history_noun  viewing history / purchase history / interaction history

Templates never start a sentence with one of them, so no capitalised forms are needed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from recalign.errors import ConfigError

logger = logging.getLogger(__name__)

# Placeholder name in templates -> `Domain` field.
PLACEHOLDERS: dict[str, str] = {
    "item_noun": "item",
    "items_noun": "items",
    "verb": "verb",
    "verb_past": "verb_past",
    "history_noun": "history",
}


@dataclass(frozen=True)
class Domain:
    """The words for one kind of catalogue (all lower case)."""

    item: str
    items: str
    verb: str
    verb_past: str
    history: str

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"domain word {f.name!r} must be a non-empty string")
            if "{" in value or "}" in value:
                raise ConfigError(f"domain word {f.name!r} may not contain braces: {value!r}")

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    def words(self) -> dict[str, str]:
        """The template placeholders and their values."""
        return {name: getattr(self, attr) for name, attr in PLACEHOLDERS.items()}


DOMAINS: dict[str, Domain] = {
    "items": Domain("item", "items", "interact with", "interacted with", "interaction history"),
    "products": Domain("product", "products", "buy", "bought", "purchase history"),
    "movies": Domain("movie", "movies", "watch", "watched", "viewing history"),
    "books": Domain("book", "books", "read", "read", "reading history"),
    "music": Domain("song", "songs", "listen to", "listened to", "listening history"),
}
NEUTRAL = DOMAINS["items"]  # custom data says nothing about what its items are


def parse_domain(value: str | Mapping[str, Any] | Domain | None) -> Domain:
    """A domain from a preset name (`movies`), `key=value` pairs or a mapping.

    Pairs and mappings start from the neutral words: `item=recipe,verb=cook,
    verb_past=cooked` gives "recipes" as the plural (item + "s") and keeps "interaction
    history". Keys: item, items, verb, verb_past, history.
    """
    if value is None:
        return NEUTRAL
    if isinstance(value, Domain):
        return value
    if isinstance(value, str):
        if value in DOMAINS:
            return DOMAINS[value]
        if "=" not in value:
            raise ConfigError(
                f"unknown domain {value!r}: choose from {', '.join(DOMAINS)} or give "
                "words as key=value pairs (item=recipe,verb=cook,verb_past=cooked)"
            )
        pairs = {}
        for part in value.split(","):
            key, sep, word = part.partition("=")
            if not sep:
                raise ConfigError(f"domain: expected key=value, got {part!r}")
            pairs[key.strip()] = word.strip()
        value = pairs
    known = {f.name for f in fields(Domain)}
    unknown = sorted(set(value) - known)
    if unknown:
        raise ConfigError(f"domain: unknown key(s) {unknown}; known: {sorted(known)}")
    words = dict(NEUTRAL.to_dict())
    if "item" in value and "items" not in value:
        words["items"] = f"{value['item']}s"
    words.update({k: str(v) for k, v in value.items()})
    return Domain(**words)


def domain_of_manifest(manifest: Mapping[str, Any]) -> Domain:
    """The domain a prepared dataset's manifest records.

    Datasets prepared before domains were recorded get the words of their source (by
    the dataset name: MovieLens -> movies, Amazon and the synthetic shop -> products),
    other ones the neutral words.
    """
    recorded = manifest.get("domain")
    if isinstance(recorded, Mapping):
        return parse_domain(recorded)
    name = str(manifest.get("name") or "")
    if name.startswith("movielens"):
        found = DOMAINS["movies"]
    elif name.startswith("amazon") or name == "synthetic":
        found = DOMAINS["products"]
    else:
        found = NEUTRAL
    logger.info("dataset %r records no domain; using the words for %s", name, found.items)
    return found
