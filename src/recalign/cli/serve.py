"""`recalign recommend` and `recalign serve`: top-K lists from a run, on the command line or over HTTP.

    recalign recommend RUN_DIR --history "Lash Mascara" --history 1234 -k 10 [--json]
    recalign recommend RUN_DIR --users users.jsonl --out recs.jsonl
    recalign serve RUN_DIR [--host 127.0.0.1] [--port 8000] [--max-queue 64] [--request-timeout 30]
    recalign serve runs/demo --model sasrec      # a baseline of a `recalign run` directory

`--users` reads JSON lines `{"user_id": ..., "history": [ids or texts]}` and writes one
line per user: `{"user_id", "items": [ids], "texts": [...], "scores": [...]}`.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from pathlib import Path
from typing import Any

import typer

from recalign.cli.options import field_option
from recalign.errors import RecalignError
from recalign.serving.limits import ServeCapacity, ServeLimits

logger = logging.getLogger(__name__)

app = typer.Typer(help="Recommend from a trained run, or serve it over HTTP.", no_args_is_help=True)


def _history_entry(raw: str) -> int | str:
    """CLI values are strings: a bare number is an item id, anything else a text."""
    stripped = raw.strip()
    return int(stripped) if stripped.isdigit() else raw


def _write_recommendations(rec: Any, users_file: Path, out: Path, k: int, **options: Any) -> int:
    """Every user of `users_file` with their top-K, as JSON lines in `out` (written whole)."""
    from recalign.serving.bulk import read_users, recommend_users

    users = read_users(users_file)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        for record in recommend_users(rec, users, k, source=users_file, **options):
            handle.write(json.dumps(record) + "\n")
    tmp.replace(out)  # never leave half an output file behind
    return len(users)


_LIMIT_HELP = {
    "max_history": "Items in a request's history.",
    "max_k": "Largest k of /recommend.",
    "max_candidates": "Candidates in a /rank request.",
    "max_body_bytes": "Bytes of a request body.",
}
_RUN_DIR_HELP = "A run directory: a `recalign run` directory, an LLM or baseline run, or a dataset."
_MODEL_HELP = (
    "Which model of a `recalign run` directory: llm (the fine-tuned model, the default) or "
    "a baseline it trained (pop, sasrec, ...)."
)


def recommend(
    run_dir: Path = typer.Argument(..., metavar="RUN_DIR", help=_RUN_DIR_HELP),
    history: list[str] = typer.Option(
        None,
        "--history",
        help="A history item, oldest first; repeat it. An item id, or a title: exact, "
        "with a typo, or part of it (the shortest title with those words is taken).",
    ),
    k: int = typer.Option(10, "-k", "--k", min=1, help="How many items to recommend."),
    users: Path | None = typer.Option(None, "--users", help="JSON lines of users (batch mode)."),
    out: Path | None = typer.Option(None, "--out", help="Where batch mode writes JSON lines."),
    data: Path | None = typer.Option(None, "--data", help="Prepared dataset, if the run moved."),
    include_history: bool = typer.Option(False, "--include-history", help="Allow history items."),
    no_fuzzy: bool = typer.Option(False, "--exact", help="Refuse texts that do not match exactly."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda, ... (LLM runs)."),
    model: str | None = typer.Option(None, "--model", help=_MODEL_HELP),
) -> None:
    """Top-K recommendations for one history, or for every user of a file."""
    from recalign.serving import Recommender
    from recalign.threads import configure_threads

    if (users is None) == (not history):
        raise RecalignError("give either --history (one or more) or --users FILE")
    if users is not None and out is None:
        raise RecalignError("--users needs --out FILE for the recommendations")
    configure_threads()
    rec = Recommender.load(run_dir, data_dir=data, device=device, model=model)
    if users is not None:
        assert out is not None
        count = _write_recommendations(
            rec, users, out, k, exclude_history=not include_history, fuzzy=not no_fuzzy
        )
        typer.echo(f"wrote recommendations for {count} users to {out}", err=True)
        return
    result = rec.recommend(
        [_history_entry(h) for h in history],
        k,
        exclude_history=not include_history,
        fuzzy=not no_fuzzy,
    )
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    _print_table(result, rec.describe())


def _describe_match(entry: Any) -> str | None:
    """A line saying how a history entry that was not an id or an exact title matched."""
    if entry.match == "casefold":
        return f"{entry.query!r} -> {entry.text!r} (ignoring case)"
    if entry.match not in ("fuzzy", "partial"):
        return None
    if entry.match == "fuzzy":
        how = f"a similar title, similarity {entry.similarity:.2f}"
    else:
        how = "part of its title"
    line = f"{entry.query!r} -> {entry.text!r} (fuzzy match: {how})"
    if entry.matches > 1:
        line += (
            f"; best of {entry.matches} matching items: give an item id or more of the "
            "title to pick another"
        )
    return line


def _print_table(result: Any, served: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    for entry in result.history:
        line = _describe_match(entry)
        if line is not None:
            console.print(f"[yellow]{escape(line)}[/yellow]")
    table = Table("rank", "item", "text", "score", title=f"{served['model']} ({served['kind']})")
    for item in result.items:
        table.add_row(str(item.rank), str(item.item_id), escape(item.text), f"{item.score:.4f}")
    console.print(table)
    console.print(f"score: {escape(served['score'])}", style="dim")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    run_dir: Path = typer.Argument(..., metavar="RUN_DIR", help=_RUN_DIR_HELP),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Interface to bind (loopback by default)."
    ),
    port: int = typer.Option(8000, "--port", min=0, max=65535),
    data: Path | None = typer.Option(None, "--data", help="Prepared dataset, if the run moved."),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda, ... (LLM runs)."),
    max_history: int = field_option(
        ServeLimits, "max_history", "--max-history", help=_LIMIT_HELP["max_history"]
    ),
    max_k: int = field_option(ServeLimits, "max_k", "--max-k", help=_LIMIT_HELP["max_k"]),
    max_candidates: int = field_option(
        ServeLimits, "max_candidates", "--max-candidates", help=_LIMIT_HELP["max_candidates"]
    ),
    max_body_bytes: int = field_option(
        ServeLimits, "max_body_bytes", "--max-body-bytes", help=_LIMIT_HELP["max_body_bytes"]
    ),
    batch_window_ms: float = field_option(ServeCapacity, "batch_window_ms", "--batch-window-ms"),
    max_batch: int = field_option(ServeCapacity, "max_batch", "--max-batch"),
    model: str | None = typer.Option(None, "--model", help=_MODEL_HELP),
    max_queue: int = field_option(ServeCapacity, "max_queue", "--max-queue"),
    request_timeout: float = field_option(ServeCapacity, "request_timeout_s", "--request-timeout"),
    read_timeout: float = field_option(ServeCapacity, "read_timeout_s", "--read-timeout"),
    keep_alive: int = field_option(ServeCapacity, "keep_alive_s", "--keep-alive"),
    max_connections: int = field_option(ServeCapacity, "max_connections", "--max-connections"),
    max_fuzzy_texts: int = field_option(ServeLimits, "max_fuzzy_texts", "--max-fuzzy-texts"),
    new_items: Path | None = typer.Option(
        None,
        "--new-items",
        help="Items to add at start, one text per line (an LLM run shown titles or "
        "semantic ids): recommendable without retraining.",
    ),
    max_new_items: int = field_option(ServeLimits, "max_new_items", "--max-new-items"),
) -> None:
    """Serve a run over HTTP: /recommend, /rank, /rate, /items, /health, a page at /."""
    from recalign.serving import Recommender
    from recalign.serving.app import create_app
    from recalign.serving.server import ServerLimits, run_server
    from recalign.threads import configure_threads

    configure_threads()
    # Load before binding: a missing or corrupt run dir fails here, with its message.
    rec = Recommender.load(run_dir, data_dir=data, device=device, model=model)
    limits = ServeLimits(
        max_history=max_history,
        max_k=max_k,
        max_candidates=max_candidates,
        max_body_bytes=max_body_bytes,
        max_fuzzy_texts=max_fuzzy_texts,
        max_new_items=max_new_items,
    )
    if new_items is not None:
        from recalign.serving.bulk import read_item_texts

        added = rec.add_items(read_item_texts(new_items, limits.max_text_length))
        typer.echo(f"added {len(added)} new item(s) from {new_items}", err=True)
    if not _is_loopback(host):
        logger.warning("binding %s: the API is reachable from other machines (no auth)", host)
    web = create_app(
        rec,
        limits,
        batch_window_ms=batch_window_ms,
        max_batch=max_batch,
        max_queue=max_queue,
        request_timeout_s=request_timeout,
        read_timeout_s=read_timeout,
    )
    served = rec.describe()
    others = [name for name in served.get("models", []) if name != served.get("served")]
    also = f"; the run also has {', '.join(others)} (--model NAME)" if others else ""
    typer.echo(
        f"serving {served['model']} ({served['kind']}, {served['num_items']} items) on "
        f"http://{host}:{port}/{also}",
        err=True,
    )
    server_limits = ServerLimits(
        max_connections=max_connections, keep_alive_s=keep_alive, header_timeout_s=read_timeout
    )
    run_server(web, host, port, server_limits)


app.command("recommend")(recommend)
app.command("serve")(serve)
