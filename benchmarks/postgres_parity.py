"""`verbatim eval` on the files store and on Postgres: every figure both ways, and where they differ.

    .venv/bin/python -m benchmarks.postgres_parity [--sets seed-dev,seed-heldout2,squad2,arcd,scifact]

For each set it runs `verbatim eval --json --details` twice, as a user would: on the files store (its
index kept in var/bench/parity/<set>/files-index and reused when it matches) and with `--database-url`
naming a fresh database on a real Postgres with pgvector
(`benchmarks.common.postgres_database`), or the one `--database-url SET=URL` names (its index is
reused when it holds the set). Issue 13 asks for the same figures within 0.01; this prints each
retrieval and answer figure both ways, the questions whose answer or top-10 documents differ, and
wall time and ask latency both ways. A finished run's JSON is kept (`<set>-files.json`,
`<set>-postgres.json`) and reused, so a long set (SciFact: ~12 min to embed, plus the COPY into
Postgres) can be run once in the background and compared later.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import ROOT, WORK, log, machine, postgres_database, table

DATA = ROOT.parent / "shared" / "data"
if not DATA.is_dir():
    DATA = Path("/work/shared/data")
SEED = DATA.parent / "corpus-seed"

# name: (corpus, queries), the commands of docs/quality.md
SETS: dict[str, tuple[Path, Path]] = {
    "seed-dev": (SEED, ROOT / "tests" / "data" / "seed-dev-queries.jsonl"),
    "seed-heldout2": (SEED, ROOT / "tests" / "data" / "seed-heldout2-queries.jsonl"),
    "squad2": (DATA / "squad2-sample" / "corpus.jsonl", DATA / "squad2-sample" / "queries.jsonl"),
    "arcd": (DATA / "arcd" / "corpus.jsonl", DATA / "arcd" / "queries.jsonl"),
    "scifact": (DATA / "scifact" / "corpus.jsonl", DATA / "scifact" / "queries.jsonl"),
}
TOLERANCE = 0.01


def run_eval(name: str, store: str, out: Path, database_url: str | None) -> dict:
    """One `verbatim eval --json --details` (reused from `out` when it already ran); on Postgres when
    `database_url` is given."""
    saved = out / f"{name}-{store}.json"
    if saved.is_file():
        log(f"{name} on {store}: reusing {saved}")
        return json.loads(saved.read_text(encoding="utf-8"))
    corpus, queries = SETS[name]
    environment = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    command = [sys.executable, "-m", "bot.cli", "eval", "--corpus", str(corpus), "--queries", str(queries),
               "--json", "--details"]
    if database_url is None:
        command += ["--index-dir", str(out / name / "files-index")]
    else:
        command += ["--database-url", database_url]  # an evaluation never uses DATABASE_URL
    log(f"{name} on {store}: {' '.join(command[3:])}")
    started = time.perf_counter()
    finished = subprocess.run(command, env=environment, cwd=ROOT, capture_output=True, text=True, check=False)
    if finished.returncode != 0:
        raise SystemExit(f"{name} on {store} failed ({finished.returncode}):\n{finished.stderr[-3000:]}")
    summary = json.loads(finished.stdout)
    summary["wall_seconds"] = time.perf_counter() - started
    summary["load_average"] = os.getloadavg()[0]
    saved.write_text(json.dumps(summary, ensure_ascii=False), encoding="utf-8")
    return summary


def figures(summary: dict) -> dict[str, float]:
    """Every retrieval and answer figure, by name (None-valued ones left out)."""
    found: dict[str, float] = {}
    for part in ("retrieval", "answers"):
        for key, value in summary[part].items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                found[f"{part}.{key}"] = float(value)
    return found


def differing_questions(files: dict, postgres: dict) -> list[list[object]]:
    """Questions whose answer text, answered/right verdict or top-10 documents differ."""
    by_id = {r["id"]: r for r in postgres.get("results", [])}
    rows: list[list[object]] = []
    for a in files.get("results", []):
        b = by_id.get(a["id"])
        if b is None:
            rows.append([a["id"], "missing on Postgres", "", ""])
            continue
        what = [field for field in ("answered", "right", "verbatim") if a[field] != b[field]]
        if a["answer"] != b["answer"]:
            what.append("answer text")
        if a["ranked_docs"] != b["ranked_docs"]:
            what.append("top-10 documents")
        if what:
            rows.append([a["id"], ", ".join(what), " ".join(a["ranked_docs"][:3]), " ".join(b["ranked_docs"][:3])])
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default=",".join(SETS), help="comma-separated: " + ", ".join(SETS))
    parser.add_argument("--out", type=Path, default=WORK / "parity", help="where runs are kept and reused")
    parser.add_argument("--database-url", action="append", default=[], metavar="SET=URL",
                        help="use this database for SET (its index is reused when it holds the set) "
                             "instead of a fresh Postgres")
    args = parser.parse_args(argv)
    given = dict(item.split("=", 1) for item in args.database_url)
    names = [n for n in args.sets.split(",") if n]
    unknown = sorted(set(names) - set(SETS))
    if unknown:
        raise SystemExit(f"Unknown sets {unknown}: choose from {', '.join(SETS)}.")
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"Machine: {machine()}")

    summary_rows: list[list[object]] = []
    worst = 0.0
    for name in names:
        files = run_eval(name, "files", args.out, None)
        server, url = None, given.get(name, "")
        if not url and not (args.out / f"{name}-postgres.json").is_file():
            server, url = postgres_database(name.replace("-", "_"))
        try:
            postgres = run_eval(name, "postgres", args.out, url)
        finally:
            if server is not None:
                server.cleanup()
        a, b = figures(files), figures(postgres)
        rows = []
        for key in sorted(set(a) | set(b)):
            gap = abs(a.get(key, float("nan")) - b.get(key, float("nan")))
            worst = max(worst, gap) if gap == gap else float("inf")
            rows.append([key, a.get(key, "–"), b.get(key, "–"), gap])
        la, lb = files["latency_ms"]["total"], postgres["latency_ms"]["total"]
        rows.append(["ask p50 / p95 ms", f"{la['p50']:.1f} / {la['p95']:.1f}",
                     f"{lb['p50']:.1f} / {lb['p95']:.1f}", ""])
        rows.append(["eval wall s (index built or reused)",
                     f"{files['wall_seconds']:.0f} ({'reused' if files['index']['reused'] else 'built'})",
                     f"{postgres['wall_seconds']:.0f} ({'reused' if postgres['index']['reused'] else 'built'})", ""])
        print(f"\n## {name}\n")
        print(table(["figure", "files", "postgres", "|difference|"], rows))
        different = differing_questions(files, postgres)
        if different:
            print(f"\n{len(different)} questions differ:\n")
            print(table(["question", "what differs", "files top 3", "postgres top 3"], different))
        summary_rows.append([name, files["questions"], max((r[3] for r in rows if isinstance(r[3], float)),
                                                            default=0.0), len(different)])
    print("\n## all sets\n")
    print(table(["set", "questions", "largest |difference|", "questions that differ"], summary_rows))
    verdict = "within" if worst <= TOLERANCE else "OUTSIDE"
    print(f"\nLargest difference {worst:.4f}: {verdict} the issue's {TOLERANCE}.")


if __name__ == "__main__":
    main()
