"""Lexical ranking inside Postgres two ways: the store's BM25 in SQL against Postgres full-text search.

    .venv/bin/python -m benchmarks.postgres_lexical [--sets scifact,arcd] [--scifact-url URL] [--arcd-url URL]

Both rank passages lexically only (no vectors), in the same database and on the same passages:

- **store BM25**: `PostgresIndex.lexical` (index/store/postgres.py), BM25 over our own analysed terms
  (index/store/lexical.py: Snowball stems, the Arabic light stem beside Snowball's, our stop words),
  scored in SQL with the version's statistics, without and with the title (TITLE_WEIGHT 0.5, the default);
- **full-text search**: a `tsvector` column of each passage's text (`english` config for SciFact;
  `simple` and `arabic` for ARCD) with a GIN index, ranked by `ts_rank` or `ts_rank_cd` against the
  question as an OR of its lexemes (`plainto_tsquery` ANDs every word and finds nothing for long
  questions), and `websearch_to_tsquery` as written (AND) for reference.

The 50 best passages become a document ranking as `verbatim eval` makes one (each document at its best
passage); the table gives nDCG@10 and hit@1/5/10 against the sets' evidence, and per-question latency
(p50 / p95 ms, one connection, one question at a time, after 5 warm-up questions).

A database is given by URL (one `verbatim index build` or `verbatim eval` has written the set into it
with DATABASE_URL set), or, without one, a fresh Postgres (`benchmarks.common.postgres_database`) is
started and the set indexed into it (SciFact: ~12 min of embedding first).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.common import ROOT, log, machine, median, percentile, postgres_database, table

DATA = ROOT.parent / "shared" / "data"
if not DATA.is_dir():
    DATA = Path("/work/shared/data")
SETS = {"scifact": DATA / "scifact", "arcd": DATA / "arcd"}
# Full-text configurations per set: SciFact is English; Arabic has Snowball's stemmer and the
# language-neutral `simple` (lower-cased words, no stems).
CONFIGS = {"scifact": ("english",), "arcd": ("simple", "arabic")}
PASSAGES = 50  # as `verbatim eval` ranks documents: the first 50 passages
TITLE_WEIGHT = 0.5


def indexed_database(name: str, url: str | None):
    """(server or None, url) of a database holding set `name`'s index."""
    if url:
        return None, url
    from index.settings import Settings
    from index.store.build import build_index

    server, url = postgres_database(f"lexical_{name}")
    settings = Settings(database_url=url)
    log(f"indexing {name} into a fresh Postgres")
    build_index(settings, [SETS[name] / "corpus.jsonl"])
    return server, url


def ensure_fts(connection, config: str) -> float:
    """The tsvector column and GIN index of one configuration, beside the store's tables; seconds taken."""
    table_name = f"bench_fts_{config}"
    exists = connection.execute("SELECT to_regclass(%s)", (table_name,)).fetchone()[0]
    if exists:
        return 0.0
    started = time.perf_counter()
    # `titled`: the article's title as weight B (ts_rank counts it 0.4) beside the text as A (1.0),
    # as the store adds 0.5 × the title's BM25 to every passage of the article.
    connection.execute(
        f"CREATE TABLE {table_name} AS SELECT p.row, p.doc_id, to_tsvector('{config}', p.text) AS tsv, "  # noqa: S608
        f"setweight(to_tsvector('{config}', p.text), 'A') || setweight(to_tsvector('{config}', d.title), 'B') "
        "AS titled FROM verbatim_passages p JOIN verbatim_current c ON p.added_in <= c.version "
        "AND (p.removed_in IS NULL OR p.removed_in > c.version) "
        "JOIN verbatim_documents d ON d.doc_id = p.doc_id AND d.added_in <= c.version "
        "AND (d.removed_in IS NULL OR d.removed_in > c.version)")
    connection.execute(f"CREATE INDEX {table_name}_gin ON {table_name} USING gin (tsv)")
    connection.execute(f"CREATE INDEX {table_name}_titled_gin ON {table_name} USING gin (titled)")
    connection.execute(f"ANALYZE {table_name}")
    return time.perf_counter() - started


def fts_query(config: str, rank: str, how: str, column: str = "tsv") -> str:
    """SQL ranking passages by full-text search over `column` (tsv, or titled); one parameter, the question."""
    if how == "or":  # an OR of the question's lexemes as the configuration analyses it
        query = (f"(SELECT coalesce(string_agg(quote_literal(l), ' | '), '')::tsquery "  # noqa: S608
                 f"FROM unnest(tsvector_to_array(to_tsvector('{config}', %(q)s))) AS l)")
    else:
        query = f"websearch_to_tsquery('{config}', %(q)s)"
    function, _, normalisation = rank.partition(", normalisation ")
    scored = f"{function}(f.{column}, q.query{', ' + normalisation if normalisation else ''})"
    return (f"SELECT f.row, f.doc_id, {scored} AS score FROM bench_fts_{config} f, "  # noqa: S608
            f"(SELECT {query} AS query) q WHERE f.{column} @@ q.query ORDER BY score DESC, f.row LIMIT {PASSAGES}")


def measure(questions, rank_documents: Callable[[str], list[str]]) -> dict[str, float]:
    from index.evaluation import hit_at, ndcg_at

    for item in questions[:5]:
        rank_documents(item.question)
    scores: dict[str, list[float]] = {"ndcg@10": [], "hit@1": [], "hit@5": [], "hit@10": []}
    latency: list[float] = []
    for item in questions:
        started = time.perf_counter()
        ranked = rank_documents(item.question)
        latency.append((time.perf_counter() - started) * 1000)
        scores["ndcg@10"].append(ndcg_at(ranked, item.evidence, 10))
        for k in (1, 5, 10):
            scores[f"hit@{k}"].append(hit_at(ranked, item.evidence, k))
    out = {name: sum(values) / len(values) for name, values in scores.items()}
    out["p50"], out["p95"] = median(latency), percentile(latency, 0.95)
    return out


def run_set(name: str, url: str) -> list[list[object]]:
    from index.engine import clean_question
    from index.evaluation import document_ranking, load_questions
    from index.retrieval.question import parse_question
    from index.store.postgres import PostgresIndex, connect

    questions = [q for q in load_questions(SETS[name] / "queries.jsonl") if q.evidence]
    store = PostgresIndex(url, pool_size=1)
    rows: list[list[object]] = []
    log(f"{name}: {len(questions)} questions over {store.passage_count:,} passages")

    def store_bm25(title_weight: float) -> Callable[[str], list[str]]:
        def rank(question: str) -> list[str]:
            # As the engine reads a question over undated sources (time words stay words).
            terms = parse_question(clean_question(question, 2000), dated_sources=False).retrieval_terms
            found = store.lexical(terms, PASSAGES, title_weight=title_weight)
            by_row = store.passages([row for row, _ in found])
            return document_ranking(by_row[row].doc_id for row, _ in found if row in by_row)
        return rank

    for label, weight in (("store BM25 (our terms)", 0.0), (f"store BM25 + title {TITLE_WEIGHT}", TITLE_WEIGHT)):
        figures = measure(questions, store_bm25(weight))
        rows.append([name, label, *figures.values()])
        log(f"{name}: {label} nDCG@10 {figures['ndcg@10']:.3f}")

    with connect(url) as connection:
        for config in CONFIGS[name]:
            seconds = ensure_fts(connection, config)
            if seconds:
                log(f"{name}: tsvector ({config}) and GIN index made in {seconds:.1f} s")
            # ts_rank's normalisation 1 divides by 1 + log(length): long passages lose their edge.
            for rank, how, column in (("ts_rank", "or", "tsv"), ("ts_rank, normalisation 1", "or", "tsv"),
                                      ("ts_rank_cd", "or", "tsv"), ("ts_rank", "websearch", "tsv"),
                                      ("ts_rank", "or", "titled")):
                sql = fts_query(config, rank, how, column)

                def fts(question: str, sql: str = sql) -> list[str]:
                    found = connection.execute(sql, {"q": question}).fetchall()
                    return document_ranking(doc_id for _, doc_id, _ in found)

                figures = measure(questions, fts)
                label = (f"FTS {config}, {rank}, " + ("OR of lexemes" if how == "or" else "websearch_to_tsquery")
                         + (", title as weight B" if column == "titled" else ""))
                rows.append([name, label, *figures.values()])
                log(f"{name}: {label} nDCG@10 {figures['ndcg@10']:.3f}")
    store.close()
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="scifact,arcd")
    parser.add_argument("--scifact-url", default=None, help="a database holding SciFact's index")
    parser.add_argument("--arcd-url", default=None, help="a database holding ARCD's index (test split)")
    args = parser.parse_args(argv)
    print(f"Machine: {machine()}")
    rows: list[list[object]] = []
    for name in [n for n in args.sets.split(",") if n]:
        server, url = indexed_database(name, getattr(args, f"{name}_url"))
        try:
            rows += run_set(name, url)
        finally:
            if server is not None:
                server.cleanup()
    print(table(["set", "ranking", "nDCG@10", "hit@1", "hit@5", "hit@10", "p50 ms", "p95 ms"], rows))


if __name__ == "__main__":
    main()
