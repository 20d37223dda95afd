"""The `verbatim` command line: build the index, ask, search, list sources, chat, run the bot."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from index.answers.compose import Answer
from index.engine import Engine
from index.errors import IndexMissingError, VerbatimError
from index.settings import Settings
from index.sources.corpus import load_corpus
from index.store.build import BuildReport, Progress as BuildProgress, build_index
from index.store.files import StoredIndex

SAMPLE_QUESTION = "How many civilians were killed?"

app = typer.Typer(
    help="Verbatim answers questions about news events by quoting its sources.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _printable_output() -> None:
    # Paths may hold bytes that are not UTF-8; print them escaped (as stderr does) rather than fail.
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="backslashreplace")


index_app = typer.Typer(help="Build and inspect the search index.", no_args_is_help=True)
app.add_typer(index_app, name="index")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

IndexDirOption = Annotated[
    Path | None, typer.Option("--index-dir", help="Index folder (default: INDEX_DIR, or <DATA_DIR>/index).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")]
# The engine checks the range (1 to MAX_K), so the limit is set in one place.
KOption = Annotated[int | None, typer.Option("--k", help="Passages to retrieve (default: TOP_K; at most MAX_K).")]
SourceOption = Annotated[str | None, typer.Option("--source", help="Only this document id (see `verbatim sources`).")]
T = TypeVar("T")


def load_settings(index_dir: Path | None = None) -> Settings:
    try:
        settings = Settings()
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in error.errors())
        fail(f"The settings are not valid ({problems}). Fix them in .env or the environment (see .env.example).")
    if index_dir is not None:
        if text_argument(str(index_dir)) != str(index_dir):
            fail(f"The index folder {index_dir} has a name that is not UTF-8, which FAISS cannot open; "
                 "choose a folder whose name is.")
        settings.index_dir = index_dir
    return settings


def fail(message: str, *, as_json: bool = False, code: int = 1) -> None:
    if as_json:
        print(json.dumps({"error": message}, ensure_ascii=False))
    else:
        err.print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(code)


def guarded(action: Callable[[], T], *, as_json: bool = False) -> T:
    """Run an engine call; its errors become one clear line instead of a traceback."""
    try:
        return action()
    except VerbatimError as error:
        fail(str(error), as_json=as_json)
    except OSError as error:
        fail(f"{error}", as_json=as_json)
    raise AssertionError("unreachable")


def text_argument(value: str) -> str:
    """Text typed on the command line or in `chat`. Bytes that were not UTF-8 reach Python as lone
    surrogates (PEP 383), which nothing downstream can encode: they become U+FFFD, so the
    rest of the text still counts and messages can show it."""
    try:
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:  # surrogates that were never bytes (not from argv or stdin): the engine drops them
        return value


def open_engine(index_dir: Path | None, *, as_json: bool = False) -> Engine:
    settings = load_settings(index_dir)
    return guarded(lambda: Engine.load(settings), as_json=as_json)


# ---------------------------------------------------------------- index


@index_app.command("build")
def index_build(
    corpus: Annotated[
        list[Path] | None,
        typer.Option("--corpus", help="A corpus folder or .jsonl file; repeat for several (default: CORPUS_DIR)."),
    ] = None,
    index_dir: IndexDirOption = None,
) -> None:
    """Index the corpus from scratch as a new version; the previous one stays usable until it is done."""
    settings = load_settings(index_dir)
    report = guarded(lambda: with_progress(lambda progress: build_index(settings, corpus, progress=progress)))
    print_build_report(report)


@index_app.command("update")
def index_update(
    corpus: Annotated[
        list[Path] | None,
        typer.Option("--corpus", help="A corpus folder or .jsonl file; repeat for several (default: CORPUS_DIR)."),
    ] = None,
    index_dir: IndexDirOption = None,
) -> None:
    """Bring the index up to date with the corpus, embedding only new and changed documents."""
    settings = load_settings(index_dir)
    report = guarded(lambda: with_progress(
        lambda progress: build_index(settings, corpus, progress=progress, incremental=True)))
    print_build_report(report)


@index_app.command("merge")
def index_merge(index_dir: IndexDirOption = None) -> None:
    """Merge the index's segments into one, dropping the old copies of changed and removed articles.

    Additions merge small segments on their own; this compacts everything, e.g. after many changes."""
    from index.store.merge import compact_index
    from index.store.vectors import VectorIndexPolicy

    settings = load_settings(index_dir)
    before = guarded(lambda: StoredIndex.open_current(settings.index_dir, searchable=False))
    segments = len(before.segments)
    before.close()
    folder = guarded(lambda: compact_index(settings.index_dir, VectorIndexPolicy.from_settings(settings)))
    out.print(f"Merged {segments} segment(s) into one → {folder}")


@index_app.command("status")
def index_status(as_json: JsonOption = False, index_dir: IndexDirOption = None) -> None:
    """What is indexed, with which model, and what changed in the corpus since."""
    settings = load_settings(index_dir)
    status = guarded(lambda: corpus_status(settings), as_json=as_json)
    if as_json:
        print(json.dumps(status, ensure_ascii=False))
        return
    index = status["index"]
    out.print(f"Index {index['folder']}: {index['documents']} documents, {index['passages']} passages, "
              f"built {index['built_at']} with {index['model']} ({index['dimension']}-d, {index['vector_index']})"
              + (f" + {index['multilingual_model']}" if index["multilingual_model"] else ""))
    if status["model_matches"] is False:
        out.print(f"[yellow]The settings name {escape(settings.embedding_model)}: rebuild with "
                  "`verbatim index build`.[/]")
    changes = status["corpus"]
    if not any(changes[key] for key in ("added", "changed", "removed")):
        out.print(f"The index is up to date with {settings.corpus_dir}.")
    for key in ("added", "changed", "removed"):
        if changes[key]:
            out.print(f"{key}: {escape(', '.join(changes[key]))}")
    if any(changes[key] for key in ("added", "changed", "removed")):
        out.print("Run `verbatim index update` to index the changes.")
    for warning in changes["warnings"]:
        err.print(f"[yellow]warning:[/] {escape(warning)}")


def corpus_status(settings: Settings) -> dict[str, Any]:
    stored = StoredIndex.open_current(settings.index_dir, searchable=False)
    try:
        indexed = {doc_id: info.content_hash for doc_id, info in stored.documents.items()}
        manifest = stored.manifest
    finally:
        stored.close()
    corpus = load_corpus([settings.corpus_dir], max_article_chars=settings.max_article_chars)
    current = {a.doc_id: a.content_hash for a in corpus.articles}
    return {
        "index": {**asdict(manifest), "folder": str(stored.folder)},
        "model_matches": manifest.model == settings.embedding_model,
        "corpus": {
            "folder": str(settings.corpus_dir),
            "added": sorted(set(current) - set(indexed)),
            "changed": sorted(d for d in current if d in indexed and indexed[d] != current[d]),
            "removed": sorted(set(indexed) - set(current)),
            "warnings": corpus.warnings,
        },
    }


@app.command()
def add(
    url: Annotated[str, typer.Argument(help="The article's web address.")],
    as_json: JsonOption = False,
) -> None:
    """Fetch the article at URL, save it into the corpus as Markdown, and index it."""
    from index.sources.ingest import add_url  # the web client (httpx) costs every other command ~0.1 s to import

    url = text_argument(url)
    settings = load_settings()
    report = guarded(lambda: with_progress(lambda progress: add_url(settings, url, progress=progress)),
                     as_json=as_json)
    if as_json:
        print(json.dumps({
            "status": report.status, "reason": report.reason, "path": str(report.path) if report.path else None,
            "doc_id": report.article.doc_id,
            "title": report.article.title,
            "embedded_passages": report.build.embedded_passages if report.build else 0,
        }, ensure_ascii=False))
        return
    if report.status == "duplicate" or report.build is None:  # only an added article comes with a build
        out.print(f"Not added: {report.reason} ({escape(report.article.doc_id)}: {escape(report.article.title)}).")
        return
    article = report.article
    out.print(f"Added {escape(article.title)} — {escape(article.source or 'unknown outlet')}, "
              f"{article.published or 'undated'} as {escape(str(report.path))}")
    print_build_report(report.build)


def print_build_report(report: BuildReport) -> None:
    for warning in report.warnings:
        err.print(f"[yellow]warning:[/] {escape(warning)}")
    out.print(
        f"Indexed {report.documents} documents into {report.passages} passages in {report.seconds:.1f} s "
        f"({report.passages_per_second:.1f} passages/s; {report.embedded_sentences} sentences of "
        f"{report.embedded_documents} documents embedded) → {report.index_dir}"
    )
    if report.added or report.changed or report.removed:
        out.print(f"Since the previous index: {len(report.added)} added, {len(report.changed)} changed, "
                  f"{len(report.removed)} removed.")


def with_progress(work: Callable[[Callable[[BuildProgress], None]], T]) -> T:
    """Run `work(progress)` with a progress bar on a terminal, or one line per stage elsewhere."""
    if not err.is_terminal:
        last_stage = ""

        def print_stage(event: BuildProgress) -> None:
            nonlocal last_stage
            if event.stage != last_stage and event.stage != "done":
                last_stage = event.stage
                err.print(f"{event.stage}…")

        return work(print_stage)
    with Progress(
        TextColumn("{task.description:<26}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=err, transient=True,
    ) as bar:
        tasks: dict[str, Any] = {}

        def show(event: BuildProgress) -> None:
            if event.stage == "done":
                return
            if event.stage not in tasks:
                tasks[event.stage] = bar.add_task(event.stage, total=max(event.total, 1))
            bar.update(tasks[event.stage], completed=event.done, total=max(event.total, 1))

        return work(show)


# ---------------------------------------------------------------- questions


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question, in quotes.")],
    as_json: JsonOption = False,
    k: KOption = None,
    source: SourceOption = None,
    index_dir: IndexDirOption = None,
) -> None:
    """Answer a question with quotations from the sources, each cited."""
    question, source = text_argument(question), source and text_argument(source)
    engine = open_engine(index_dir, as_json=as_json)
    answer = guarded(lambda: engine.ask(question, k=k, doc_id=source), as_json=as_json)
    if as_json:
        print(json.dumps(answer.to_json(), ensure_ascii=False))
    else:
        print_answer(answer)


def print_answer(answer: Answer) -> None:
    if answer.note:
        out.print(f"[dim]{escape(answer.note)}[/]")
    out.print(escape(answer.text), highlight=False)
    out.print()
    for citation in answer.citations:
        meta = " — ".join(part for part in [citation.title, citation.source, citation.published] if part)
        out.print(f"[bold][{citation.n}][/] {escape(meta)}", highlight=False)
        out.print(f"    “{escape(citation.quote)}”", highlight=False)
        if citation.url:
            out.print(f"    {escape(citation.url)}", highlight=False)
    out.print(f"[dim]{answer.timings_ms.get('total', 0):.0f} ms[/]")


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="Words or a question.")],
    as_json: JsonOption = False,
    k: KOption = None,
    source: SourceOption = None,
    index_dir: IndexDirOption = None,
) -> None:
    """Show the passages that best match QUERY, with their scores."""
    query, source = text_argument(query), source and text_argument(source)
    engine = open_engine(index_dir, as_json=as_json)
    hits = guarded(lambda: engine.search(query, k=k, doc_id=source), as_json=as_json)
    if as_json:
        print(json.dumps({"query": query, "hits": [h.to_json() for h in hits]}, ensure_ascii=False))
        return
    if not hits:
        out.print("Nothing matched.")
    for rank, hit in enumerate(hits, start=1):
        similarity = "" if hit.similarity is None else f" similarity {hit.similarity:.3f}"
        out.print(f"[bold]{rank}.[/] {escape(hit.title)} [dim]({escape(hit.passage_id)}{similarity})[/]",
                  highlight=False)
        out.print(f"   {escape(hit.text)}", highlight=False)


@app.command()
def sources(as_json: JsonOption = False, index_dir: IndexDirOption = None) -> None:
    """List the indexed documents."""
    engine = open_engine(index_dir, as_json=as_json)
    documents = engine.sources()
    if as_json:
        print(json.dumps([
            {"doc_id": d.doc_id, "title": d.title, "source": d.source, "url": d.url, "published": d.published,
             "author": d.author, "passages": d.passage_count}
            for d in documents
        ], ensure_ascii=False))
        return
    table = Table("id", "title", "outlet", "date", "passages")
    for d in documents:
        table.add_row(escape(d.doc_id), escape(d.title), escape(d.source or ""), d.published or "",
                      str(d.passage_count))
    out.print(table)


@app.command()
def chat(index_dir: IndexDirOption = None) -> None:
    """Ask questions in the terminal, one after another (Ctrl-D or `quit` ends)."""
    engine = open_engine(index_dir)
    interactive = sys.stdin.isatty()
    if isinstance(sys.stdin, io.TextIOWrapper):
        # A line that is not UTF-8 must not end the chat: keep its bytes, and show them as U+FFFD below.
        sys.stdin.reconfigure(errors="surrogateescape")
    if interactive:
        info = engine.info()
        out.print(f"Verbatim — {info.documents} sources, {info.passages} passages. Ask a question; `quit` ends.")
    try:
        while True:
            try:
                line = text_argument(input("? " if interactive else ""))
            except EOFError:
                break
            if line.strip().lower() in {"quit", "exit", ":q"}:
                break
            if not line.strip():
                continue
            try:
                print_answer(engine.ask(line))
            except VerbatimError as error:
                err.print(f"[yellow]{escape(str(error))}[/]")
            except Exception as error:  # noqa: BLE001 - one bad question must not end the conversation
                err.print(f"[red]That question could not be answered ({escape(type(error).__name__)}: "
                          f"{escape(str(error))}). This is a bug; please report it. Ask another question.[/]")
            out.print()
    except KeyboardInterrupt:  # Ctrl-C, at the prompt or during an answer, ends the chat like Ctrl-D
        out.print()


@app.command()
def run() -> None:
    """Start the Discord bot (needs DISCORD_TOKEN in the environment or .env)."""
    settings = load_settings()
    if settings.discord_token is None:
        fail("DISCORD_TOKEN is not set. Put the bot's token in .env (see docs/discord.md).")
    from bot.discord.client import run_bot

    guarded(lambda: run_bot(settings))


@app.command()
def start() -> None:
    """What `make run` does: build the index if missing, then run the bot, or chat without a token."""
    settings = load_settings()
    try:
        Engine.load(settings)
    except IndexMissingError:
        err.print(f"No index in {settings.index_dir} yet; building it from {settings.corpus_dir}.")
        index_build(corpus=None, index_dir=None)
    except VerbatimError as error:
        fail(str(error))
    if settings.discord_token is not None:
        run()
    elif sys.stdin.isatty():
        chat(index_dir=None)
    else:
        out.print("DISCORD_TOKEN is not set and this is not a terminal, so here is one sample answer.\n")
        out.print(f"[bold]? {SAMPLE_QUESTION}[/]")
        ask(SAMPLE_QUESTION)


# ---------------------------------------------------------------- evaluation


@app.command("eval")
def eval_(
    corpus: Annotated[Path, typer.Option("--corpus", help="The corpus to index: a folder or a .jsonl file.")],
    queries: Annotated[Path, typer.Option("--queries", help="Questions, one JSON object a line.")],
    k: Annotated[int, typer.Option("--k", min=1, max=100, help="Cut-off of MRR and nDCG (documents).")] = 10,
    as_json: JsonOption = False,
    index_dir: Annotated[
        Path | None,
        typer.Option("--index-dir", help="Keep the index here and reuse it when the corpus and models match "
                                         "(default: a temporary index)."),
    ] = None,
    details: Annotated[bool, typer.Option("--details", help="Also list every question's result.")] = False,
    off_topic: Annotated[
        bool, typer.Option("--off-topic", help="Count every question as one the corpus cannot answer "
                                               "(questions about other corpora, to measure false answers).")
    ] = False,
    split: Annotated[
        str, typer.Option("--split", help="all, or only the answer scorer's `dev` or `train` questions "
                                          "(a fixed split by question id, see docs/quality.md).")
    ] = "all",
) -> None:
    """Index CORPUS, ask every question of QUERIES, and print retrieval, answer and latency figures."""
    import tempfile

    from index.evaluation import as_off_topic, evaluate, load_questions, result_to_json, summarise, warm_up

    settings = load_settings()
    questions = guarded(lambda: load_questions(queries), as_json=as_json)
    if off_topic:
        questions = [as_off_topic(q) for q in questions]
    if split not in {"all", "dev", "train"}:
        fail("--split is all, dev or train.", as_json=as_json, code=2)
    if split != "all":
        from index.answers.training import is_dev

        questions = [q for q in questions if is_dev(q.id) == (split == "dev")]
    with tempfile.TemporaryDirectory(prefix="verbatim-eval-") as scratch:
        settings.index_dir = index_dir or Path(scratch) / "index"
        build = guarded(lambda: _eval_index(settings, corpus), as_json=as_json)
        engine = guarded(lambda: Engine.load(settings), as_json=as_json)
        warm_up(engine)
        results = guarded(lambda: evaluate(engine, questions, k=k), as_json=as_json)
    summary = summarise(results, k)
    summary["corpus"] = str(corpus)
    summary["queries"] = str(queries)
    summary["index"] = build
    summary["settings"] = settings.model_dump(mode="json", exclude={"discord_token", "allowed_channel_ids"})
    if details:
        summary["results"] = [result_to_json(r) for r in results]
    if as_json:
        print(json.dumps(summary, ensure_ascii=False))
        return
    _print_eval(summary, results, details)


@app.command("train-answerer")
def train_answerer(
    data: Annotated[Path, typer.Option("--data", help="The evaluation sets "
                                       "(../shared/data).")] = Path("../shared/data"),
    output: Annotated[Path | None, typer.Option("--output", help="Where to write the scorer "
                                                "(default: the one shipped in index/).")] = None,
    work_dir: Annotated[Path | None, typer.Option("--work-dir", help="Where the sets' indexes are kept "
                                                  "and reused (default: DATA_DIR/train).")] = None,
    regularisation: Annotated[float, typer.Option("--c", min=1e-4, help="Inverse regularisation strength.")] = 1.0,
    as_json: JsonOption = False,
) -> None:
    """Fit the answer scorer on the training split and choose its threshold on the development split."""
    import hashlib

    from index.answers.scorer import DEFAULT_SCORER
    from index.answers.training import collect, collecting_policy, default_sets, fit, report_json

    settings = load_settings()
    work = work_dir or settings.data_dir / "train"
    repo_data = Path(__file__).resolve().parents[1] / "tests" / "data"
    sets = default_sets(data, repo_data)
    missing = [str(p) for s in sets for p in (s.corpus, *s.questions) if not p.exists()]
    if missing:
        fail("Training needs these files: " + ", ".join(missing) + ". Point --data at the evaluation sets.",
             as_json=as_json)

    def open_engine(training_set) -> Engine:
        key = hashlib.sha256(str(training_set.corpus.resolve()).encode()).hexdigest()[:10]
        set_settings = settings.model_copy(update={"index_dir": work / f"{training_set.corpus.stem}-{key}"})
        guarded(lambda: _eval_index(set_settings, training_set.corpus), as_json=as_json)
        return guarded(lambda: Engine.load(set_settings, policy=collecting_policy(set_settings)),
                       as_json=as_json)

    rows = collect(sets, open_engine, progress=None if as_json else (lambda line: err.print(line)))
    report = fit(rows, settings.answer_max_sentences, regularisation)
    target = output or DEFAULT_SCORER
    report.scorer.save(target)
    if as_json:
        print(report_json(report))
        return
    out.print(f"Fitted on {sum(report.train_questions.values())} questions "
              f"({', '.join(f'{k} {v}' for k, v in report.train_questions.items())}); "
              f"threshold {report.scorer.threshold}, keep ratio {report.scorer.keep_ratio} → {target}")
    out.print("Development split (never fitted on):")
    for name, figures in report.dev.items():
        out.print(f"  {name}: " + "  ".join(f"{k} {v}" for k, v in figures.items()))


def _eval_index(settings: Settings, corpus: Path) -> dict[str, Any]:
    """Reuse the index in INDEX_DIR when it was built from this corpus with these models; else build it."""
    from index.sources.corpus import load_corpus
    from index.store.files import INDEX_FORMAT, StoredIndex, fingerprint

    try:
        stored = StoredIndex.open_current(settings.index_dir, searchable=False)
    except VerbatimError:
        stored = None
    if stored is not None:
        m = stored.manifest
        stored.close()
        same = (m.format == INDEX_FORMAT
                and m.corpus_fingerprint == fingerprint(
                    load_corpus([corpus], max_article_chars=settings.max_article_chars).articles)
                and m.model == settings.embedding_model
                and m.multilingual_model == (None if settings.multilingual_model.lower() in {"", "none", "off"}
                                             else settings.multilingual_model)
                and m.passage_max_tokens <= settings.passage_max_tokens
                and m.passage_overlap_sentences == settings.passage_overlap_sentences)
        if same:
            return {"reused": True, "documents": m.documents, "passages": m.passages,
                    "build_seconds": m.build_seconds}
    report = with_progress(lambda progress: build_index(settings, [corpus], progress=progress))
    return {"reused": False, "documents": report.documents, "passages": report.passages,
            "build_seconds": report.seconds}


def _print_eval(summary: dict[str, Any], results: list[Any], details: bool) -> None:
    build = summary["index"]
    how = "reused" if build["reused"] else "built"
    out.print(f"{summary['corpus']}: {build['documents']} documents, {build['passages']} passages "
              f"({how}; build took {build['build_seconds']:.1f} s)")
    out.print(f"{summary['queries']}: {summary['questions']} questions")
    retrieval = summary["retrieval"]
    if retrieval["questions"]:
        figures = "  ".join(f"{name} {value:.3f}" for name, value in retrieval.items() if name != "questions")
        out.print(f"retrieval ({retrieval['questions']} with evidence, by document): {figures}")
    answers = summary["answers"]
    if answers["answerable"]:
        right = answers["answerable_right"]
        out.print(f"answerable: {answers['answerable']}, answered {answers['answerable_answered']:.3f}"
                  + ("" if right is None else f", answered with an expected string {right:.3f}"))
    if answers["unanswerable"]:
        out.print(f"unanswerable: {answers['unanswerable']}, declined {answers['unanswerable_declined']:.3f}")
    out.print(f"answered overall {answers['answered']:.3f}; quotes verbatim {answers['quotes_verbatim']:.3f}")
    latency = summary["latency_ms"]
    out.print("latency ms: " + "  ".join(
        f"{stage} p50 {latency[stage]['p50']:.1f} / p95 {latency[stage]['p95']:.1f}" for stage in latency
    ))
    wrong = [r for r in results
             if (r.answerable is True and (not r.answered or r.right is False))
             or (r.answerable is False and r.answered) or not r.verbatim]
    for r in (results if details else wrong[:20]):
        verdict = "ok" if r not in wrong else "MISS"
        out.print(f"[dim]{verdict} {escape(r.id)}: {escape(r.question)}[/]", highlight=False)
        out.print(f"[dim]    → {escape(r.answer[:300])}[/]", highlight=False)
    if len(wrong) > 20 and not details:
        out.print(f"[dim]… and {len(wrong) - 20} more misses (--details lists every question)[/]")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
