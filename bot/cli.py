"""The `verbatim` command line: build the index, ask, search, list sources, chat, run the bot."""

from __future__ import annotations

import datetime as dt
import io
import json
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import SecretStr, ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from index.answers.compose import WRITTEN_NOTE, Answer
from index.engine import Engine
from index.errors import IndexMissingError, VerbatimError
from index.settings import Settings
from index.sources.corpus import load_corpus
from index.store.build import BuildReport, Progress as BuildProgress, build_index
from index.store.files import StoredIndex
from index.store.stores import database_url, location, open_index

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
AsOfOption = Annotated[
    str | None,
    typer.Option("--as-of", help="Ask as on this day, YYYY-MM-DD: time words are read against it and later "
                                 "sources are not known yet (default: today)."),
]
T = TypeVar("T")
DatabaseUrlOption = Annotated[
    str | None,
    typer.Option("--database-url", help="Build the evaluation index in this Postgres database (a scratch one: "
                                        "its index is replaced), to measure the Postgres store. DATABASE_URL, "
                                        "the index the bot serves, is never used by an evaluation."),
]


def load_settings(index_dir: Path | None = None) -> Settings:
    try:
        settings = Settings()
    except ValidationError as error:
        problems = "; ".join(_problem(e["loc"], e["msg"]) for e in error.errors())
        fail(f"The settings are not valid ({problems}). Fix them in .env or the environment (see .env.example).")
    if index_dir is not None:
        if text_argument(str(index_dir)) != str(index_dir):
            fail(f"The index folder {index_dir} has a name that is not UTF-8, which FAISS cannot open; "
                 "choose a folder whose name is.")
        settings.index_dir = index_dir
    return settings


def _problem(location: tuple[int | str, ...], message: str) -> str:
    """One invalid setting; a check across settings (like SHARD_IDS against SHARD_COUNT) names them itself."""
    return f"{'.'.join(map(str, location)).upper()}: {message}" if location else message


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
    if database_url(settings) is not None:
        out.print("Nothing to merge: the Postgres store keeps every version in the same tables "
                  "(rows a version dropped are deleted by a later write).")
        return
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
    stored = open_index(settings, searchable=False)
    try:
        indexed = stored.content_hashes()
        manifest = stored.manifest
    finally:
        stored.close()
    corpus = load_corpus([settings.corpus_dir], max_article_chars=settings.max_article_chars)
    current = {a.doc_id: a.content_hash for a in corpus.articles}
    return {
        "index": {**asdict(manifest), "folder": stored.location},
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
    as_of: AsOfOption = None,
) -> None:
    """Answer a question with quotations from the sources, each cited."""
    question, source = text_argument(question), source and text_argument(source)
    asked_on = parse_as_of(as_of, as_json=as_json)
    engine = open_engine(index_dir, as_json=as_json)
    answer = guarded(lambda: engine.ask(question, k=k, doc_id=source, as_of=asked_on), as_json=as_json)
    also = engine.also_reported([c.doc_id for c in answer.citations])
    if as_json:
        payload = answer.to_json()
        for citation in payload["citations"]:
            citation["also_reported"] = [report.to_json() for report in also.get(citation["doc_id"], [])]
        print(json.dumps(payload, ensure_ascii=False))
    else:
        print_answer(answer, also)


def print_answer(answer: Answer, also_reported: dict[str, list[Any]] | None = None) -> None:
    if answer.note:
        out.print(f"[dim]{escape(answer.note)}[/]")
    out.print(escape(answer.text), highlight=False)
    out.print()
    for citation in answer.citations:
        meta = " — ".join(part for part in [citation.title, citation.source, citation.published or "undated"]
                          if part)
        out.print(f"[bold][{citation.n}][/] {escape(meta)}", highlight=False)
        out.print(f"    “{escape(citation.quote)}”", highlight=False)
        if citation.url:
            out.print(f"    {escape(citation.url)}", highlight=False)
        others = (also_reported or {}).get(citation.doc_id, [])
        if others:  # the same story, stored once: other outlets' copies (feeds)
            out.print("    also reported by " + "; ".join(
                escape(", ".join(p for p in (o.source or o.url, o.published) if p)) for o in others), highlight=False)
    if answer.worded_by_model:
        out.print(f"[dim]{WRITTEN_NOTE}[/]")
    out.print(f"[dim]{answer.timings_ms.get('total', 0):.0f} ms[/]")


def parse_as_of(value: str | None, *, as_json: bool = False) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(text_argument(value).strip())
    except ValueError:
        fail(f"--as-of takes a day as YYYY-MM-DD, not {value!r}.", as_json=as_json, code=2)
    raise AssertionError("unreachable")


@app.command()
def timeline(
    topic: Annotated[str, typer.Argument(help="What the timeline is about, in quotes.")],
    as_json: JsonOption = False,
    as_of: AsOfOption = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=50, help="Events to show at most.")] = 12,
    index_dir: IndexDirOption = None,
) -> None:
    """The dated events about TOPIC in date order, each a quoted sentence with its source."""
    topic = text_argument(topic)
    asked_on = parse_as_of(as_of, as_json=as_json)
    engine = open_engine(index_dir, as_json=as_json)
    events = guarded(lambda: engine.timeline(topic, as_of=asked_on, limit=limit), as_json=as_json)
    if as_json:
        print(json.dumps([event.to_json() for event in events], ensure_ascii=False))
        return
    if not events:
        out.print("No dated passage about that was found.")
    for event in events:
        c = event.citation
        meta = " — ".join(part for part in [c.title, c.source, c.published or "undated"] if part)
        out.print(f"[bold]{event.date}[/]  “{escape(event.quote)}” [{c.n}]", highlight=False)
        out.print(f"            [dim]{escape(meta)}{' — ' + escape(c.url) if c.url else ''}[/]", highlight=False)


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
    from index.engine import LiveEngine

    # A chat may last: before each question it switches to an index another process has changed since.
    live = LiveEngine(load_settings(index_dir), open_engine(index_dir))
    engine = live.current
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
                live.follow()
                engine = live.current
                answer = engine.ask(line)
                print_answer(answer, engine.also_reported([c.doc_id for c in answer.citations]))
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
        err.print(f"No index in {location(settings)} yet; building it from {settings.corpus_dir}.")
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


# ---------------------------------------------------------------- feeds

feeds_app = typer.Typer(help="Follow RSS and Atom feeds: new articles are added and indexed.", no_args_is_help=True)
app.add_typer(feeds_app, name="feeds")


@feeds_app.command("add")
def feeds_add(
    url: Annotated[str, typer.Argument(help="The feed's address (RSS or Atom).")],
    every: Annotated[int | None, typer.Option("--every", min=1, max=10_080,
                                              help="Minutes between polls (default: FEED_EVERY_MINUTES).")] = None,
    channel: Annotated[int | None, typer.Option("--channel", min=1,
                                                help="A Discord channel id where new articles are announced.")] = None,
) -> None:
    """Follow a feed; `verbatim run` polls it on its schedule, `verbatim feeds poll` now."""
    from index.sources.feeds import open_registry

    settings = load_settings()
    url = text_argument(url)
    with open_registry(settings.data_dir) as registry:
        feed, new = guarded(lambda: registry.add(url, every_minutes=every or settings.feed_every_minutes,
                                                 channel_id=channel))
    where = f", announced in channel {feed.channel_id}" if feed.channel_id else ""
    out.print(f"{'Following' if new else 'Updated'} {escape(feed.url)}: polled every {feed.every_minutes} "
              f"minutes{where}. `verbatim feeds poll` fetches it now.")


@feeds_app.command("list")
def feeds_list(as_json: JsonOption = False) -> None:
    """The followed feeds and how each is doing: last success, last error, items added."""
    from index.sources.feeds import open_registry

    settings = load_settings()
    with open_registry(settings.data_dir) as registry:
        feeds = registry.feeds()
    if as_json:
        print(json.dumps([feed.to_json() for feed in feeds], ensure_ascii=False))
        return
    if not feeds:
        out.print("No feeds are followed. `verbatim feeds add URL` follows one.")
        return
    for feed in feeds:  # one block a feed: a table of eight columns is unreadable in a narrow terminal
        out.print(f"[bold]{escape(feed.url)}[/]" + (f" — {escape(feed.outlet)}" if feed.outlet else ""),
                  highlight=False)
        channel = f" · announced in channel {feed.channel_id}" if feed.channel_id else ""
        out.print(f"  every {feed.every_minutes} min{channel} · {feed.items_added} articles added", highlight=False)
        out.print(f"  last success {feed.last_success_at or 'never'} · next poll {feed.next_poll_at}", highlight=False)
        if feed.last_error:
            failing = f" [red]({feed.failures} failed in a row)[/]" if feed.failing else ""
            out.print(f"  last error {feed.last_error_at}: {escape(feed.last_error)}{failing}", highlight=False)


@feeds_app.command("remove")
def feeds_remove(url: Annotated[str, typer.Argument(help="The feed's address, as `feeds list` shows it.")]) -> None:
    """Stop following a feed (the articles it brought stay in the corpus)."""
    from index.sources.feeds import open_registry

    settings = load_settings()
    url = text_argument(url)
    with open_registry(settings.data_dir) as registry:
        feed = guarded(lambda: registry.remove(url))
    out.print(f"No longer following {escape(feed.url)}; its {feed.items_added} articles stay in the corpus.")


@feeds_app.command("poll")
def feeds_poll(as_json: JsonOption = False) -> None:
    """Fetch every feed once, now: new items are saved to the corpus and indexed."""
    from index.sources.feed_poll import poll_feeds

    settings = load_settings()
    report = guarded(lambda: with_progress(lambda progress: poll_feeds(settings, progress=progress)),
                     as_json=as_json)
    if as_json:
        print(json.dumps(report.to_json(), ensure_ascii=False))
        return
    if not report.results:
        out.print("No feeds are followed. `verbatim feeds add URL` follows one.")
    for result in report.results:
        out.print(f"[bold]{escape(result.feed.url)}[/]", highlight=False)
        if result.error:
            out.print(f"  [red]failed:[/] {escape(result.error)}", highlight=False)
            continue
        if result.not_modified:
            out.print("  not modified since the last poll")
        for article in result.added:
            out.print(f"  added {escape(article.title)} — {escape(article.source or 'unknown outlet')}, "
                      f"{article.published or 'undated'} ({escape(article.doc_id)})", highlight=False)
        for duplicate in result.duplicates:
            out.print(f"  skipped (duplicate) {escape(duplicate.article.title)}: {escape(duplicate.reason)} "
                      f"({escape(duplicate.kept.doc_id)})", highlight=False)
        if result.seen:
            out.print(f"  skipped (already seen) {result.seen} items")
        for failure in result.failed:
            out.print(f"  [yellow]failed item:[/] {escape(failure)}", highlight=False)
    out.print(f"{len(report.added)} added, {report.duplicates} duplicates, {report.seen} already seen, "
              f"{report.failed} failed.")
    if report.build is not None:
        print_build_report(report.build)


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
    database_url: DatabaseUrlOption = None,
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
        settings = _eval_settings(settings, index_dir or Path(scratch) / "index", database_url, as_json)
        build = guarded(lambda: _eval_index(settings, corpus), as_json=as_json)
        engine = guarded(lambda: Engine.load(settings), as_json=as_json)
        warm_up(engine)
        results = guarded(lambda: evaluate(engine, questions, k=k), as_json=as_json)
    summary = summarise(results, k)
    summary["corpus"] = str(corpus)
    summary["queries"] = str(queries)
    summary["index"] = build
    summary["settings"] = settings.model_dump(mode="json", exclude={"discord_token", "llm_api_key", "database_url",
                                                                      "allowed_channel_ids"})
    if details:
        summary["results"] = [result_to_json(r) for r in results]
    if as_json:
        print(json.dumps(summary, ensure_ascii=False))
        return
    _print_eval(summary, results, details)


def training_index_settings(settings: Settings, work: Path, corpus: Path) -> Settings:
    """Where a training set's index is kept: one per corpus under `work`, reused while it still fits, and
    never in the served database."""
    import hashlib

    key = hashlib.sha256(str(corpus.resolve()).encode()).hexdigest()[:10]
    return settings.model_copy(update={"index_dir": work / f"{corpus.stem}-{key}", "database_url": None})


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
        set_settings = training_index_settings(settings, work, training_set.corpus)
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


# ---------------------------------------------------------------- claims


@app.command()
def check(
    claim: Annotated[str, typer.Argument(help="The claim, in quotes.")],
    as_json: JsonOption = False,
    k: KOption = None,
    source: SourceOption = None,
    index_dir: IndexDirOption = None,
    as_of: AsOfOption = None,
) -> None:
    """Quote the sentences of the sources that support or contradict CLAIM, each cited, with a verdict."""
    claim, source = text_argument(claim), source and text_argument(source)
    checked_on = parse_as_of(as_of, as_json=as_json)
    engine = open_engine(index_dir, as_json=as_json)
    checked = guarded(lambda: engine.check(claim, k=k, doc_id=source, as_of=checked_on), as_json=as_json)
    if as_json:
        print(json.dumps(checked.to_json(), ensure_ascii=False))
        return
    if checked.note:
        out.print(f"[dim]{escape(checked.note)}[/]")
    out.print(f"[bold]{escape(checked.verdict.capitalize())}.[/] {escape(checked.summary)}", highlight=False)
    for judged in checked.sentences:
        citation = judged.citation
        meta = " — ".join(part for part in [citation.title, citation.source, citation.published] if part)
        out.print(f"\n[bold][{citation.n}] {judged.stance}[/] ({escape(judged.reason)})", highlight=False)
        out.print(f"    “{escape(citation.quote)}”", highlight=False)
        out.print(f"    {escape(meta)}", highlight=False)
        if citation.url:
            out.print(f"    {escape(citation.url)}", highlight=False)
    out.print(f"[dim]{checked.timings_ms.get('total', 0):.0f} ms[/]")


@app.command("eval-claims")
def eval_claims(
    corpus: Annotated[Path, typer.Option("--corpus", help="The corpus to index: a folder or a .jsonl file.")],
    queries: Annotated[Path, typer.Option("--queries", help="Claims, one JSON object a line, with `labels`.")],
    index_dir: Annotated[
        Path | None,
        typer.Option("--index-dir", help="Keep the index here and reuse it when the corpus and models match "
                                         "(default: a temporary index)."),
    ] = None,
    database_url: DatabaseUrlOption = None,
    tune: Annotated[bool, typer.Option("--tune", help="Search the thresholds on the tuning part first, "
                                                      "then report with them (else: the shipped ones).")] = False,
    as_json: JsonOption = False,
) -> None:
    """Check every labelled claim of QUERIES against CORPUS: accuracy per label, on the part never tuned
    on (`report`), the tuning part and the whole."""
    import tempfile

    from index.answers.claims import DEFAULT_THRESHOLDS
    from index.claim_evaluation import collect, load_claims, split, summarise, thresholds_json, tune as tune_thresholds

    settings = load_settings()
    claims = guarded(lambda: load_claims(queries), as_json=as_json)
    with tempfile.TemporaryDirectory(prefix="verbatim-eval-") as scratch:
        settings = _eval_settings(settings, index_dir or Path(scratch) / "index", database_url, as_json)
        build = guarded(lambda: _eval_index(settings, corpus), as_json=as_json)
        engine = guarded(lambda: Engine.load(settings), as_json=as_json)
        collected = guarded(lambda: collect(engine, claims), as_json=as_json)
    thresholds = DEFAULT_THRESHOLDS
    if tune:
        thresholds, _ = tune_thresholds(split(collected, "tune"), DEFAULT_THRESHOLDS)
    summary: dict[str, Any] = {"corpus": str(corpus), "queries": str(queries), "index": build, "tuned": tune,
               "thresholds": thresholds_json(thresholds),
               "parts": {part: summarise(split(collected, part), thresholds) for part in ("report", "tune", "all")}}
    if as_json:
        print(json.dumps(summary, ensure_ascii=False))
        return
    out.print(f"{corpus}: {build['documents']} documents; {queries}: {len(claims)} claims")
    out.print("thresholds " + ("tuned on the tuning part: " if tune else "shipped: ")
              + "  ".join(f"{name} {value}" for name, value in summary["thresholds"].items()))
    for part, figures in summary["parts"].items():
        out.print(f"[bold]{part}[/] ({figures['claims']} claims): balanced accuracy {figures['balanced_accuracy']:.3f}")
        for label, entry in figures["labels"].items():
            quoting = entry.get("accuracy_quoting_evidence")
            out.print(f"  {label:<10} {entry['claims']:>4} claims: accuracy {entry['accuracy']:.3f}"
                      + ("" if quoting is None else f" (quoting the cited evidence {quoting:.3f})")
                      + "  " + ", ".join(f"{v} {n}" for v, n in entry["verdicts"].items()), highlight=False)


def _eval_settings(settings: Settings, index_dir: Path, database_url: str | None, as_json: bool) -> Settings:
    """An evaluation builds its own index: in `index_dir`, or in the scratch database given, never in the
    database the bot serves from (DATABASE_URL)."""
    served = settings.database_url.get_secret_value() if settings.database_url else None
    if database_url is not None and database_url == served:
        fail("--database-url names DATABASE_URL, the index the bot serves; an evaluation would replace it. "
             "Give it a scratch database.", as_json=as_json, code=2)
    return settings.model_copy(update={"index_dir": index_dir,
                                       "database_url": SecretStr(database_url) if database_url else None})


def _eval_index(settings: Settings, corpus: Path) -> dict[str, Any]:
    """Reuse the index in INDEX_DIR when it was built from this corpus with these models; else build it."""
    from index.sources.corpus import load_corpus
    from index.store.files import INDEX_FORMAT, fingerprint

    try:
        stored = open_index(settings, searchable=False)
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
    written = summary.get("written")
    if written:  # ANSWER_MODE=llm
        shares = ("" if written["kept"] is None else
                  f"; of the model's {written['sentences']} sentences {written['kept']:.3f} kept, "
                  f"{written['dropped']:.3f} dropped by their checks")
        out.print(f"written answers: {written['llm']} whole, {written['llm_partial']} partial, "
                  f"{written['extractive_fallback']} fell back to quotes{shares}")
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


# ---------------------------------------------------------------- feedback


@app.command()
def feedback(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list of votes instead of text.")] = False,
    since: Annotated[str | None, typer.Option("--since", help="Only votes cast on or after this date "
                                                              "(2026-11-01, or 2026-11-01T12:00; UTC).")] = None,
) -> None:
    """Export readers' 👍/👎 votes on the bot's answers, with the question, answer and citations."""
    import sqlite3
    from contextlib import closing

    from index.feedback import FeedbackRow, FeedbackStore, feedback_rows_json, parse_since
    from index.state import connect_state, state_path

    settings = load_settings()
    cutoff = guarded(lambda: parse_since(since), as_json=as_json) if since else None
    rows: list[FeedbackRow] = []
    # Only read: a data folder without votes is left as it is (no database, tables or salt made to export).
    path = state_path(settings.data_dir)
    if path.exists():
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as probe:
            voted = probe.execute("SELECT 1 FROM sqlite_master WHERE name = 'feedback_votes'").fetchone()
        if voted:  # the tables and the salt exist, so opening the store changes nothing
            with closing(connect_state(settings.data_dir)) as conn:
                rows = FeedbackStore(conn, retention_days=settings.feedback_retention_days).export(since=cutoff)
    if as_json:
        print(json.dumps(feedback_rows_json(rows), ensure_ascii=False))
        return
    if not rows:
        out.print("No votes yet" + (f" since {escape(since)}" if since else "") + ".")
        return
    ups = sum(r.vote == "up" for r in rows)
    out.print(f"{len(rows)} votes: 👍 {ups}  👎 {len(rows) - ups}")
    for r in rows:
        mark = "👍" if r.vote == "up" else "👎"
        where = f"server {r.guild_id}" if r.guild_id else "direct"
        out.print(f"{mark} {r.voted_at} {where}: {escape(r.question)}", highlight=False)
        if r.reason:
            out.print(f"   reason: {escape(r.reason)}", highlight=False)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
