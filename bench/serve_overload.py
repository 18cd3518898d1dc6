"""The overload run of `bench_serve.py --mode overload` (not a script of its own).

Four measurements, one JSON document:

1. **Overload**: `--clients` closed-loop clients (each sends its next request as soon
   as the last one is answered; after a 503 it waits a random 0-200 ms, ignoring the
   1 s Retry-After, so the server stays overloaded) for `--duration` seconds against
   the shedding server (`--max-queue`, 10 s request deadline) and against the same
   server with an unbounded queue (`--max-queue 100000`, no practical deadline: what
   the server did before), runs interleaved. The plan is bench_serve's mix with a
   tenth malformed. Reported: accepted (2xx/422) latency p50/p99/max, 503s and how
   fast they come back, any other 5xx.
2. **A /rank with 300 near-miss titles** (100 history + 200 candidates, each title with
   one character dropped) against the same /rank by item ids, median of 5, on a server
   of its own: popularity over Amazon Beauty's 12,101 titles when `RECALIGN_DATA_DIR`
   has them (else over the synthetic shop), `--max-fuzzy-texts 300`. Popularity, not
   the tiny-t5: ranking 200 candidates after 100 titles takes the LM over 10 s on
   this CPU, which would hide the cost of matching the texts.
3. **Fuzzy matching in-process**: 300 near-miss lookups with `ItemCatalog` (rapidfuzz)
   vs the difflib scan it replaced, on Beauty's 12,101 titles when
   `RECALIGN_DATA_DIR` has them (else the synthetic catalogue).
4. **Silent sockets**: 300 connections that send nothing: how many the server has
   closed `--read-timeout` + 2 s later, and /health afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import difflib
import json
import os
import platform
import random
import socket
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
from bench_serve import Server, build_run, make_requests, run_load, wait_healthy

READ_TIMEOUT_S = 5.0
SILENT_SOCKETS = 300


def percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(np.asarray(values) * 1000, q)), 1) if values else None


async def closed_loop(url: str, plan: list[dict], clients: int, duration_s: float) -> dict:
    import httpx

    accepted: list[float] = []
    shed: list[float] = []
    statuses: Counter = Counter()
    stop_at = time.monotonic() + duration_s

    async def client(http: httpx.AsyncClient, index: int) -> None:
        rng = random.Random(index)
        position = index
        while time.monotonic() < stop_at:
            request = plan[position % len(plan)]
            position += clients
            body = request["body"]
            kwargs = (
                {"content": body, "headers": {"content-type": "application/json"}}
                if isinstance(body, bytes)
                else ({"json": body} if body is not None else {})
            )
            started = time.perf_counter()
            try:
                response = await http.request(request["method"], request["path"], **kwargs)
                status = str(response.status_code)
            except httpx.TimeoutException:
                status = "timeout"
            except httpx.HTTPError as error:
                status = f"transport:{type(error).__name__}"
            elapsed = time.perf_counter() - started
            statuses[status] += 1
            if status == "503":
                shed.append(elapsed)
                await asyncio.sleep(rng.uniform(0, 0.2))
            elif status in ("200", "422"):
                accepted.append(elapsed)

    limits = httpx.Limits(max_connections=clients)
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as http:
        await asyncio.gather(*[client(http, i) for i in range(clients)])
    wall = time.perf_counter() - started
    other_5xx = sum(c for s, c in statuses.items() if s.startswith("5") and s != "503")
    return {
        "seconds": round(wall, 1),
        "answered_per_s": round(len(accepted) / wall, 2),
        "accepted_latency_ms": {
            "p50": percentile(accepted, 50),
            "p99": percentile(accepted, 99),
            "max": percentile(accepted, 100),
        },
        "shed_503": len(shed),
        "shed_latency_ms": {"p50": percentile(shed, 50), "p99": percentile(shed, 99)},
        "other_5xx": other_5xx,
        "status_counts": dict(sorted(statuses.items())),
    }


def near_misses(texts: list[str], count: int, seed: int) -> tuple[list[int], list[str]]:
    """`count` item ids with titles of 20+ characters, and each title with a character dropped."""
    rng = random.Random(seed)
    ids = rng.sample([i for i, t in enumerate(texts, start=1) if len(t) >= 20], count)
    typos = []
    for item_id in ids:
        title = texts[item_id - 1]
        cut = rng.randrange(1, len(title) - 1)
        typos.append(title[:cut] + title[cut + 1 :])
    return ids, typos


def near_miss_dataset(work: Path, synthetic: Path) -> Path:
    """Beauty prepared into `work` when the real files are there, else the synthetic shop."""
    from recalign.data.prepare import prepare_dataset

    source = data_root() / "amazon2014" / "beauty"
    if not (source / "items.tsv").is_file():
        return synthetic
    prepare_dataset("amazon2014-beauty", work / "beauty", source)
    return work / "beauty"


def item_texts(data_dir: Path) -> list[str]:
    from recalign.data import load_prepared

    return load_prepared(data_dir).items.get_column("text").to_list()


def time_near_miss_rank(url: str, texts: list[str], repeats: int = 5) -> dict:
    import httpx

    ids, typos = near_misses(texts, 300, seed=1)
    by_text = {"history": typos[:100], "candidates": typos[100:]}
    by_id = {"history": ids[:100], "candidates": ids[100:]}
    times: dict[str, list[float]] = {"texts": [], "ids": []}
    statuses = Counter()
    resolved_right = None
    with httpx.Client(base_url=url, timeout=300) as http:
        for _ in range(repeats):
            for label, body in (("texts", by_text), ("ids", by_id)):
                started = time.perf_counter()
                response = http.post("/rank", json=body)
                times[label].append(time.perf_counter() - started)
                statuses[f"{label}:{response.status_code}"] += 1
                if label == "texts" and response.status_code == 200:
                    got = response.json()
                    found = [e["item_id"] for e in got["history"] + got["candidates"]]
                    resolved_right = sum(a == b for a, b in zip(found, ids, strict=True))
    texts_s, ids_s = statistics.median(times["texts"]), statistics.median(times["ids"])
    return {
        "request": "/rank, 100 history + 200 candidate titles, one character dropped in each",
        "body_bytes": len(json.dumps(by_text)),
        "median_s_by_texts": round(texts_s, 3),
        "median_s_by_ids": round(ids_s, 3),
        "ratio_texts_over_ids": round(texts_s / ids_s, 2),
        "runs_s_by_texts": [round(t, 3) for t in times["texts"]],
        "statuses": dict(statuses),
        "near_misses_resolved_to_their_item": resolved_right,
    }


def data_root() -> Path:
    return Path(os.environ.get("RECALIGN_DATA_DIR", "../shared/data"))


def beauty_titles() -> list[str] | None:
    path = data_root() / "amazon2014" / "beauty" / "items.tsv"
    if not path.is_file():
        return None
    with open(path, encoding="utf-8", newline="") as handle:
        return [row["title"] for row in csv.DictReader(handle, delimiter="\t")]


def difflib_closest(norm_texts: list[str], norm: str, cutoff: float) -> int | None:
    """The lookup `ItemCatalog` made before rapidfuzz, as it was (difflib, cheap bounds first)."""
    matcher = difflib.SequenceMatcher(autojunk=False)
    matcher.set_seq2(norm)
    scored: list[tuple[float, int]] = []
    for index, text in enumerate(norm_texts):
        matcher.set_seq1(text)
        if (
            matcher.real_quick_ratio() >= cutoff
            and matcher.quick_ratio() >= cutoff
            and (ratio := matcher.ratio()) >= cutoff
        ):
            scored.append((ratio, index))
    scored.sort(key=lambda pair: (-pair[0], pair[1]))
    return scored[0][1] if scored else None


def time_fuzzy_in_process(synthetic_texts: list[str], difflib_lookups: int = 20) -> dict:
    from recalign.serving.resolve import DEFAULT_FUZZY_CUTOFF, ItemCatalog, _normalise

    beauty = beauty_titles()
    texts = beauty if beauty is not None else synthetic_texts
    catalog = ItemCatalog(list(range(1, len(texts) + 1)), texts)
    ids, typos = near_misses(texts, 300, seed=2)
    started = time.perf_counter()
    resolved = catalog.resolve(typos, field="candidates")
    rapid_s = time.perf_counter() - started
    norm_texts = [_normalise(t) for t in texts]
    started = time.perf_counter()
    for typo in typos[:difflib_lookups]:
        difflib_closest(norm_texts, _normalise(typo), DEFAULT_FUZZY_CUTOFF)
    difflib_s = (time.perf_counter() - started) / difflib_lookups
    rapid_per = rapid_s / len(typos)
    return {
        "catalogue": "amazon2014 beauty titles" if beauty is not None else "synthetic titles",
        "catalogue_items": len(texts),
        "rapidfuzz_300_lookups_s": round(rapid_s, 3),
        "rapidfuzz_ms_per_lookup": round(rapid_per * 1000, 2),
        "difflib_ms_per_lookup": round(difflib_s * 1000, 1),
        "difflib_lookups_timed": difflib_lookups,
        "difflib_300_lookups_s_extrapolated": round(difflib_s * 300, 1),
        "speedup_rapidfuzz_over_difflib": round(difflib_s / rapid_per, 1),
        "resolved_to_their_item": sum(r.item_id == i for r, i in zip(resolved, ids, strict=True)),
    }


def silent_sockets(url: str, count: int = SILENT_SOCKETS) -> dict:
    import httpx

    host, port = url.removeprefix("http://").split(":")
    sockets = []
    for _ in range(count):
        conn = socket.create_connection((host, int(port)), timeout=5)
        conn.setblocking(False)
        sockets.append(conn)
    during = httpx.get(url + "/health", timeout=30).status_code
    time.sleep(READ_TIMEOUT_S + 2)
    closed = 0
    for conn in sockets:
        try:
            closed += conn.recv(1) == b""
        except BlockingIOError:
            pass  # still open: nothing to read
        except OSError:
            closed += 1
        conn.close()
    after = httpx.get(url + "/health", timeout=30).status_code
    return {
        "silent_sockets": count,
        "closed_by_server_after_s": READ_TIMEOUT_S + 2,
        "closed": closed,
        "health_status_while_open": during,
        "health_status_after": after,
    }


def main(args: argparse.Namespace) -> None:
    import httpx

    common = ["--max-history", "100", "--read-timeout", str(READ_TIMEOUT_S)]
    common += ["--max-fuzzy-texts", "300"]  # the near-miss /rank resolves all 300 texts
    configs = [
        (
            f"shedding (max-queue {args.max_queue}, 10 s deadline)",
            [*common, "--max-queue", str(args.max_queue), "--request-timeout", "10"],
        ),
        (
            "unbounded queue (baseline)",
            [*common, "--max-queue", "100000", "--request-timeout", "3600"],
        ),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        run, texts = build_run(work, args.items, args.users)
        plan = make_requests(2000, len(texts), texts, seed=0, max_history=100)
        # The near-miss /rank first, alone: nothing else competes for the CPU.
        near_data = near_miss_dataset(work, run.parent / "data")
        popularity = Server(near_data, "popularity", common, args.server_threads)
        try:
            health = wait_healthy(popularity.url, popularity.process, popularity.log)
            served = f"popularity over {health.get('dataset')} ({health.get('num_items')} items)"
            near_miss = {
                "served": served,
                **time_near_miss_rank(popularity.url, item_texts(near_data)),
            }
        finally:
            popularity.stop()
        servers = [Server(run, label, extra, args.server_threads) for label, extra in configs]
        try:
            for server in servers:
                wait_healthy(server.url, server.process, server.log)
                warm = [r for r in plan if r["kind"] == "recommend"][:16]
                asyncio.run(run_load(server.url, warm, 8, 120))
            for _ in range(args.repeats):
                for server in servers:
                    server.runs.append(
                        asyncio.run(closed_loop(server.url, plan, args.clients, args.duration))
                    )
            sockets = silent_sockets(servers[0].url)
            summaries = []
            for server in servers:
                health = httpx.get(server.url + "/health", timeout=30).json()
                p99s = [r["accepted_latency_ms"]["p99"] for r in server.runs]
                summaries.append(
                    {
                        "config": server.label,
                        "server_args": server.extra,
                        "accepted_p99_ms_runs": p99s,
                        "runs": server.runs,
                        "other_5xx_all_runs": sum(r["other_5xx"] for r in server.runs),
                        "alive_at_end": server.process.poll() is None
                        and health.get("status") == "ok",
                        "load_counters": health.get("load"),
                    }
                )
        finally:
            for server in servers:
                server.stop()
        fuzzy = time_fuzzy_in_process(texts)
    shedding, unbounded = summaries
    load1, load5, load15 = os.getloadavg()
    print(
        json.dumps(
            {
                "bench": "serve-overload",
                "model": "tiny-t5 (d_model 128, 2+2 layers, random init), seq2seq",
                "catalogue_items": len(texts),
                "clients": args.clients,
                "seconds_per_run": args.duration,
                "repeats": args.repeats,
                "malformed_share": 0.1,
                "server_threads": args.server_threads,
                "shedding": shedding,
                "unbounded": unbounded,
                "p99_ratio_unbounded_over_shedding": round(
                    statistics.median(unbounded["accepted_p99_ms_runs"])
                    / statistics.median(shedding["accepted_p99_ms_runs"]),
                    1,
                ),
                "near_miss_rank": near_miss,
                "fuzzy_in_process": fuzzy,
                "silent_sockets": sockets,
                "machine": {
                    "cpu_count": os.cpu_count(),
                    "python": platform.python_version(),
                    "loadavg_1m_5m_15m_at_end": [round(x, 2) for x in (load1, load5, load15)],
                },
            },
            indent=2,
        )
    )
