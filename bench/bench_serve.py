"""Serving under load: `recalign serve` with a tiny-t5 run, 8 concurrent clients; overload.

    python bench/bench_serve.py [--requests 1000] [--clients 8] [--repeats 3] [--items 1000]
    python bench/bench_serve.py --mode overload [--clients 32] [--max-queue 8] [--duration 45]

Builds a synthetic shop (prepared dataset) and a tiny-t5 run directory (random init:
throughput does not depend on training), starts the real CLI server
(`recalign.cli.serve serve RUN --host 127.0.0.1`) in a subprocess, and sends a bounded
load: `--requests` requests from `--clients` concurrent clients, a tenth of them
malformed (bad JSON, unknown items, k or history over the limits, oversized bodies,
wrong types), the rest /recommend (k=10, histories of 1-20 items, some by text), /rank
(20 candidates) and /items searches. Every run has a deadline; a request that has not
answered by then counts as a timeout.

Two server configurations, measured in the same run with their runs interleaved:
micro-batching on (the default) and off (`--batch-window-ms 0 --max-batch 1`), the
baseline. Prints JSON: requests/s (median of `--repeats` runs), p50/p99 latency, status
and error counts by kind, zero 5xx, /health at the end, and the batched/unbatched ratio.

`--mode overload` (see `serve_overload.py` beside this file): `--clients` (32) closed-loop
clients for `--duration` seconds against a server that admits `--max-queue` (8)
requests at once, and against the same server with an unbounded queue (the
baseline), runs interleaved; plus a /rank with 300 near-miss titles, fuzzy matching
in-process (rapidfuzz vs the old difflib scan) and a crowd of silent sockets.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

MALFORMED_KINDS = (
    "bad_json",
    "unknown_item",
    "k_over_limit",
    "history_over_limit",
    "body_over_limit",
    "wrong_type",
)
MAX_HISTORY, MAX_K = 50, 100


def build_run(work: Path, items: int, users: int) -> tuple[Path, list[str]]:
    """A prepared synthetic shop and a tiny-t5 run directory over it."""
    import torch

    from recalign.artifacts import PromptRecord, PromptSettings, RunManifest, seal
    from recalign.data.prepare import prepare_dataset
    from recalign.models.loading import build_tiny

    torch.manual_seed(0)
    dataset = prepare_dataset("synthetic", work / "data", users=users, items=items, seed=0)
    loaded = build_tiny("tiny-t5", dataset=dataset, vocab_size=4000)
    run = work / "run"
    loaded.model.save_pretrained(run / "model")
    loaded.tokenizer.save_pretrained(run / "model")
    prompt = PromptSettings()  # the samples stage's defaults
    seal(
        run,
        RunManifest(
            model=dict(loaded.spec),
            family=loaded.family,
            inputs={"dataset": dataset.record_for(run)},
            prompt=PromptRecord(
                item_repr="title",
                max_history=prompt.max_history,
                id_seed=prompt.id_seed,
                separator=prompt.separator,
                tasks=["retrieval", "ranking", "rating"],
                max_source_length=512,
            ),
            status="done",
        ),
    )
    return run, dataset.items.get_column("text").to_list()


def make_requests(
    n: int, num_items: int, texts: list[str], seed: int, max_history: int = MAX_HISTORY
) -> list[dict]:
    """The request plan: (kind, method, path, body) with a tenth malformed, seeded."""
    rng = np.random.default_rng(seed)
    plan = []
    for i in range(n):
        if i % 10 == 9:
            kind = MALFORMED_KINDS[(i // 10) % len(MALFORMED_KINDS)]
            history = rng.integers(1, num_items + 1, size=3).tolist()
            body = {
                "bad_json": b'{"history": [1, 2,',
                "unknown_item": {"history": [*history, num_items + 7]},
                "k_over_limit": {"history": history, "k": MAX_K + 1},
                "history_over_limit": {"history": list(range(1, max_history + 2))},
                "body_over_limit": {"history": history, "padding": "x" * 70_000},
                "wrong_type": {"history": "1, 2, 3", "k": "ten"},
            }[kind]
            plan.append({"kind": kind, "method": "POST", "path": "/recommend", "body": body})
            continue
        draw = rng.random()
        length = int(rng.integers(1, 21))
        history: list = (rng.choice(num_items, size=length, replace=False) + 1).tolist()
        if i % 5 == 0:  # some histories by text, as a person would type them
            history[-1] = texts[history[-1] - 1]
        if draw < 0.78:
            plan.append(
                {
                    "kind": "recommend",
                    "method": "POST",
                    "path": "/recommend",
                    "body": {"history": history, "k": 10},
                }
            )
        elif draw < 0.89:
            candidates = (rng.choice(num_items, size=20, replace=False) + 1).tolist()
            plan.append(
                {
                    "kind": "rank",
                    "method": "POST",
                    "path": "/rank",
                    "body": {"history": history, "candidates": candidates},
                }
            )
        else:
            word = texts[int(rng.integers(num_items))].split()[1]
            plan.append(
                {
                    "kind": "items",
                    "method": "GET",
                    "path": f"/items?limit=10&query={word}",
                    "body": None,
                }
            )
    return plan


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(
    run: Path, port: int, extra: list[str], log: Path, threads: int
) -> subprocess.Popen:
    # `extra` comes last: a later --max-history overrides this one.
    command = [
        sys.executable, "-c", "from recalign.cli.serve import app; app()",
        "serve", str(run), "--host", "127.0.0.1", "--port", str(port),
        "--max-history", str(MAX_HISTORY), "--max-k", str(MAX_K), *extra,
    ]  # fmt: skip
    # The log goes to a file: an unread pipe fills up and blocks the server.
    # One torch thread by default: on a shared 2-core machine two threads contend with
    # the load generator and other processes (MACHINE.md: 2 threads fall to ~1/3 speed).
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    with open(log, "wb") as handle:
        return subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env)


def wait_healthy(url: str, server: subprocess.Popen, log: Path, timeout: float = 120.0) -> dict:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"server exited: {log.read_text()[-2000:]}")
        try:
            return httpx.get(url + "/health", timeout=2).json()
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit("server did not become healthy in time")


async def run_load(url: str, plan: list[dict], clients: int, deadline_s: float) -> dict:
    import httpx

    queue: asyncio.Queue = asyncio.Queue()
    for index, request in enumerate(plan):
        queue.put_nowait((index, request))
    latencies: list[float] = []
    rec_latencies: list[float] = []
    by_kind: dict[str, Counter] = defaultdict(Counter)
    stop_at = time.monotonic() + deadline_s

    async def client(http: httpx.AsyncClient) -> None:
        while not queue.empty() and time.monotonic() < stop_at:
            _, request = queue.get_nowait()
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
            latencies.append(elapsed)
            if request["kind"] == "recommend" and status == "200":
                rec_latencies.append(elapsed)
            by_kind[request["kind"]][status] += 1

    limits = httpx.Limits(max_connections=clients)
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        await asyncio.gather(*[client(http) for _ in range(clients)])
    wall = time.perf_counter() - started
    not_sent = queue.qsize()
    done = len(latencies)
    statuses = Counter()
    for counts in by_kind.values():
        statuses.update(counts)
    wrong = sum(
        count
        for kind, counts in by_kind.items()
        for status, count in counts.items()
        if status != ("422" if kind in MALFORMED_KINDS else "200")
    )
    ms = np.asarray(latencies) * 1000
    rec_ms = np.asarray(rec_latencies) * 1000
    return {
        "requests_done": done,
        "not_sent_by_deadline": not_sent,
        "seconds": round(wall, 3),
        "requests_per_s": round(done / wall, 2),
        "latency_ms": {
            "p50": round(float(np.percentile(ms, 50)), 1),
            "p99": round(float(np.percentile(ms, 99)), 1),
        },
        "recommend_latency_ms": {
            "p50": round(float(np.percentile(rec_ms, 50)), 1) if len(rec_ms) else None,
            "p99": round(float(np.percentile(rec_ms, 99)), 1) if len(rec_ms) else None,
        },
        "status_counts": dict(sorted(statuses.items())),
        "by_kind": {kind: dict(sorted(c.items())) for kind, c in sorted(by_kind.items())},
        "server_errors_5xx": sum(c for s, c in statuses.items() if s.startswith("5")),
        "unexpected_status": wrong,
    }


class Server:
    """One `recalign serve` subprocess on a free loopback port."""

    def __init__(self, run: Path, label: str, extra: list[str], threads: int) -> None:
        self.label, self.extra = label, extra
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.log = run.parent / f"server-{port}.log"
        self.process = start_server(run, port, extra, self.log, threads)
        self.runs: list[dict] = []

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def summary(self) -> dict:
        import httpx

        health = httpx.get(self.url + "/health", timeout=30)
        alive = self.process.poll() is None
        rates = [r["requests_per_s"] for r in self.runs]
        median_run = self.runs[rates.index(statistics.median_low(rates))]
        return {
            "config": self.label,
            "server_args": self.extra,
            "requests_per_s_median": statistics.median(rates),
            "requests_per_s_runs": rates,
            "median_run": median_run,
            "server_errors_5xx_all_runs": sum(r["server_errors_5xx"] for r in self.runs),
            "unexpected_status_all_runs": sum(r["unexpected_status"] for r in self.runs),
            "healthy_at_end": alive
            and health.status_code == 200
            and health.json().get("status") == "ok",
            "model_calls": health.json().get("batches"),
            "requests_through_batcher": health.json().get("batched_requests"),
        }


def measure(run: Path, plan: list[dict], args: argparse.Namespace) -> tuple[dict, dict]:
    """Both configurations up at once, runs interleaved (A B A B ...), so a change in
    the machine's load during the bench hits both alike."""
    servers = [
        Server(run, "micro-batching (window 2 ms, max 32)", [], args.server_threads),
        Server(
            run,
            "no batching (baseline)",
            ["--batch-window-ms", "0", "--max-batch", "1"],
            args.server_threads,
        ),
    ]
    try:
        for server in servers:
            wait_healthy(server.url, server.process, server.log)
            # Warm-up: the first calls build caches (trie, kernels) and are not load.
            warm = [r for r in plan if r["kind"] == "recommend"][:16]
            asyncio.run(run_load(server.url, warm, args.clients, 120))
        for _ in range(args.repeats):
            for server in servers:
                server.runs.append(
                    asyncio.run(run_load(server.url, plan, args.clients, args.deadline))
                )
        batched, unbatched = (server.summary() for server in servers)
    finally:
        for server in servers:
            server.stop()
    return batched, unbatched


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("batching", "overload"), default="batching")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=None, help="8; 32 in overload mode")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--items", type=int, default=1000, help="catalogue size of the synthetic shop"
    )
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--deadline", type=float, default=600.0, help="seconds per run, at most")
    parser.add_argument("--server-threads", type=int, default=1, help="torch threads in the server")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--max-queue", type=int, default=8, help="overload: the shedding server")
    parser.add_argument("--duration", type=float, default=45.0, help="overload: seconds per run")
    args = parser.parse_args()

    os.environ.setdefault(
        "RECALIGN_CACHE", str(Path(tempfile.gettempdir()) / "recalign-bench-cache")
    )
    if args.mode == "overload":
        from serve_overload import main as overload_main  # beside this file

        args.clients = args.clients or 32
        overload_main(args)
        return
    args.clients = args.clients or 8
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        run, texts = build_run(work, args.items, args.users)
        plan = make_requests(args.requests, len(texts), texts, seed=0)
        batched, unbatched = measure(run, plan, args)
    load1, load5, _ = os.getloadavg()
    print(
        json.dumps(
            {
                "bench": "serve",
                "model": "tiny-t5 (d_model 128, 2+2 layers, random init), seq2seq",
                "catalogue_items": len(texts),
                "requests_per_run": args.requests,
                "clients": args.clients,
                "malformed_share": 0.1,
                "repeats": args.repeats,
                "deadline_s_per_run": args.deadline,
                "server_threads": args.server_threads,
                "batched": batched,
                "unbatched": unbatched,
                "speedup_batched_over_unbatched": round(
                    batched["requests_per_s_median"] / unbatched["requests_per_s_median"], 2
                ),
                "machine": {
                    "cpu_count": os.cpu_count(),
                    "python": platform.python_version(),
                    "loadavg_1m_5m_at_end": [round(load1, 2), round(load5, 2)],
                    "note": "2 shared cores; other processes were using the CPU during the run",
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
