"""Generated input, thousands of cases: questions for the real engine, files for the corpus reader,
arguments and lines for the command line. Whatever comes in, the answer is a valid result or a
VerbatimError with a message, never another exception or a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st
from typer.testing import CliRunner

from index.answers.compose import Answer
from index.errors import VerbatimError
from index.retrieval.search import Hit
from index.sources.corpus import load_corpus, shown
from tests.conftest import MODEL_CACHE

SEED_DOC = "syria-vows-accountability"
WORDS = ["How", "many", "civilians", "were", "killed", "Who", "Rubio", "accountability", "Alawite", "Syria",
         "كم", "عدد", "المدنيين", "قتلوا", "?", "؟", " ", "  ", "\n", "\t"]
# The characters that broke or could break cleaning: controls, direction marks and overrides, joiners,
# lone and paired surrogates, noncharacters, the replacement character, a byte order mark.
ODD = ["\x00", "\x07", "\x1b", "\x7f", "\x85", "\u200b", "\u200c", "\u200d", "\u200e", "\u200f", "\u202a",
       "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2069", "\u2028", "\u2029", "\ufeff", "\ufffd",
       "\ud800", "\udbff", "\udc80", "\udfff", "\ud83d\ude00", "\ufdd0", "\uffff", "\U0010ffff", "\U000e0001"]
ANY_CHARACTER = st.characters(codec=None, exclude_categories=())  # every code point, surrogates included


def weighted(*choices: tuple[int, st.SearchStrategy]) -> st.SearchStrategy:
    """One of the strategies, each drawn in proportion to its weight."""
    table = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.integers(min_value=0, max_value=len(table) - 1).flatmap(lambda n: table[n])


# Real words with odd characters among them: these reach the models, the rest mostly stop at cleaning.
wordy_questions = st.lists(
    st.tuples(st.sampled_from(WORDS[:14]), st.sampled_from(ODD + [""] * 10), st.sampled_from(["", " ", "\n"])),
    min_size=1, max_size=25,
).map(lambda parts: "".join(word + odd + space for word, odd, space in parts))
odd_questions = st.one_of(
    st.text(ANY_CHARACTER, max_size=300),
    st.lists(st.sampled_from(WORDS + ODD), max_size=40).map("".join),
    st.lists(st.one_of(st.sampled_from(WORDS + ODD), st.text(ANY_CHARACTER, max_size=3)), max_size=30).map(" ".join),
    st.integers(min_value=0, max_value=30_000).map(lambda n: ("killed " * n)[:n]),  # around the limits
    st.integers(min_value=0, max_value=6_000).map(lambda n: " " * n + "Who called for accountability?"),
    st.sampled_from(["", " ", "\udfff", "killed \udfff civilians", "\u202e?\u202c", "x" * 1_000, "x" * 1_001,
                     "x" * 4_001, "x" * 10_000_000]),
)
questions = weighted((1, wordy_questions), (1, odd_questions))
not_text = st.one_of(st.none(), st.integers(), st.binary(max_size=10), st.lists(st.text(max_size=3), max_size=2))
# Mostly valid values, so that most questions reach the models; the rest must be refused clearly.
k_values = weighted((4, st.none()), (4, st.integers(min_value=1, max_value=50)), (1, st.one_of(
    st.integers(min_value=-3, max_value=60), st.booleans(), st.floats(allow_nan=True),
    st.sampled_from(["3", 10**100, -(10**100)]))))
doc_ids = weighted((5, st.none()), (3, st.just(SEED_DOC)), (1, st.one_of(
    st.text(ANY_CHARACTER, max_size=30), st.integers(), st.just(SEED_DOC + "\udfff"), st.binary(max_size=5))))


def check_answer(engine, answer: Answer) -> None:
    assert isinstance(answer, Answer)
    assert answer.question.encode("utf-8")  # raises on anything that is not text; never empty
    assert answer.question.strip() == answer.question
    for citation in answer.citations:
        assert citation.quote in engine.article_text(citation.doc_id)  # quotes stay verbatim


@settings(max_examples=2_000, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(question=weighted((9, questions), (1, not_text)), context=weighted((9, questions), (1, not_text)),
       k=k_values, doc_id=doc_ids, call=st.sampled_from(["ask", "search", "follow-up"]))
def test_generated_questions_get_a_result_or_a_clear_error(seed_engine, question, context, k, doc_id, call):
    try:
        if call == "search":
            hits = seed_engine.search(question, k=k, doc_id=doc_id)
            assert isinstance(hits, list) and all(isinstance(h, Hit) for h in hits)
            assert len(hits) <= (k or seed_engine.settings.top_k)
        else:
            answer = seed_engine.ask(question, k=k, doc_id=doc_id, context=context if call == "follow-up" else None)
            check_answer(seed_engine, answer)
    except VerbatimError as error:
        assert str(error) and str(error).encode("utf-8")  # a message a user can read


# ---------------------------------------------------------------- corpus files

SUFFIXES = [".md", ".markdown", ".txt", ".jsonl", ".html", ".htm"]
yaml_values = st.one_of(
    st.text(ANY_CHARACTER, max_size=30).map(json.dumps),  # a quoted string with any escape
    st.text(max_size=20), st.integers().map(str), st.sampled_from(
        ["[a, b]", "{a: 1}", "&x [1]", "*x", "!!binary aGk=", "!!python/object:os.system ls", "2025-13-45",
         "2025-03-09", "~", "|\n  block", "'unclosed", "[[[[[[[[[[[[[[[[[[[[", "? complex", "@bad", "%TAG"]))
front_matter = st.dictionaries(
    st.sampled_from(["title", "url", "source", "published", "author", "lang", "other", "title "]),
    yaml_values, max_size=6,
).map(lambda fields: "---\n" + "".join(f"{key}: {value}\n" for key, value in fields.items()) + "---\n")
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(ANY_CHARACTER, max_size=20)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=8,
)
jsonl_line = st.one_of(
    st.fixed_dictionaries({}, optional={key: json_values for key in ["id", "title", "text", "url", "published_at",
                                                                      "source", "lang"]})
    .map(lambda record: json.dumps(record).encode()),
    st.binary(max_size=60).map(lambda line: line.replace(b"\n", b" ")),
)
texts = st.text(ANY_CHARACTER, max_size=400).map(lambda text: text.encode("utf-8", "surrogatepass"))
file_contents = st.one_of(
    st.binary(max_size=600),
    texts,
    st.tuples(front_matter, st.text(max_size=300)).map(lambda parts: "".join(parts).encode("utf-8")),
    st.tuples(st.sampled_from(["", "\ufeff"]), front_matter, st.text(ANY_CHARACTER, max_size=200))
    .map(lambda parts: "".join(parts).encode("utf-8", "surrogatepass")),
    st.lists(jsonl_line, max_size=6).map(lambda lines: b"\n".join(lines)),
    st.text(max_size=300).map(lambda text: f"<html><head><title>{text[:20]}</title></head><body><article>"
                              f"<p>{text}</p></article></body></html>".encode()),
)
corpus_files = st.lists(
    st.tuples(st.text(ANY_CHARACTER, min_size=1, max_size=8), st.sampled_from(SUFFIXES), file_contents),
    min_size=1, max_size=5,
)
GOOD = b"---\ntitle: Good\n---\nThe council voted to close the bridge.\n"


def file_name(stem: str, suffix: str) -> bytes:
    name = stem.encode("utf-8", "surrogateescape" if all(
        "\udc80" <= c <= "\udcff" for c in stem if "\ud800" <= c <= "\udfff") else "surrogatepass")
    return name.replace(b"/", b"_").replace(b"\x00", b"_").lstrip(b".")[:40] + suffix.encode()


@settings(max_examples=400, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(files=corpus_files, max_article_chars=st.sampled_from([None, 1_000, 50]))
def test_generated_corpus_files_are_loaded_or_named_in_a_warning(files, max_article_chars):
    with tempfile.TemporaryDirectory() as scratch:
        folder = os.fsencode(scratch)
        with open(folder + b"/0-good.md", "wb") as good:
            good.write(GOOD)
        written = []
        for stem, suffix, content in files:
            path = folder + b"/1-" + file_name(stem, suffix)
            if os.path.exists(path):
                continue
            with open(path, "wb") as file:
                file.write(content)
            written.append(Path(os.fsdecode(path)))
        load = load_corpus([Path(scratch)], max_article_chars=max_article_chars)

        assert any(a.title == "Good" for a in load.articles)  # one bad file never stops the rest
        for article in load.articles:
            for value in (article.doc_id, article.title, article.text, article.origin, article.source or ""):
                assert isinstance(value.encode("utf-8"), bytes)  # raises unless every later step can store it
            assert article.doc_id and article.title and article.text
            if max_article_chars is not None:
                assert len(article.text) <= max_article_chars
        for path in written:
            name = shown(path)
            assert any(a.origin.startswith(name) for a in load.articles) or any(name in w for w in load.warnings), \
                f"{name} neither loaded nor named in a warning: {load.warnings}"
        for warning in load.warnings:
            assert warning.encode("utf-8")  # printable


# ---------------------------------------------------------------- the command line

arguments = st.one_of(
    questions.filter(lambda q: len(q) < 100_000),
    st.binary(max_size=40).map(os.fsdecode),  # what Python makes of argv bytes that are not UTF-8
    st.sampled_from(["--k", "--json", "--source", "0", "-1", "51", "abc", SEED_DOC, "--", "-", "--help"]),
)


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(command=st.sampled_from(["ask", "search", "sources"]), args=st.lists(arguments, max_size=5))
def test_generated_command_lines_end_without_a_traceback(seed_engine, monkeypatch, command, args):
    from bot import cli

    monkeypatch.setattr(cli, "open_engine", lambda *_args, **_kwargs: seed_engine)
    result = CliRunner().invoke(cli.app, [command, *args])
    output = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code in {0, 1, 2}, output
    assert "Traceback" not in output


@settings(max_examples=1, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(lines=st.lists(st.one_of(st.binary(max_size=80), texts), min_size=40, max_size=60))
def test_chat_survives_generated_lines(seed_settings, lines):
    stdin = b"\n".join(line.replace(b"\n", b" ").replace(b"\r", b" ") for line in lines) + b"\nWho is Rubio?\n"
    verbatim = str(Path(os.sys.executable).with_name("verbatim"))
    env = {k: v for k, v in os.environ.items() if k not in {"DISCORD_TOKEN"}}
    env.update(MODEL_CACHE_DIR=str(MODEL_CACHE), DATA_DIR=str(seed_settings.data_dir), PYTHONIOENCODING="utf-8:strict",
               INDEX_DIR=str(seed_settings.index_dir), CORPUS_DIR=str(seed_settings.corpus_dir))
    result = subprocess.run([verbatim, "chat"], input=stdin, capture_output=True, env=env,
                            cwd=tempfile.gettempdir(), timeout=300)
    output = result.stdout.decode("utf-8") + result.stderr.decode("utf-8")
    assert result.returncode == 0, output
    assert "Traceback" not in output and "This is a bug" not in output
    assert "Rubio" in result.stdout.decode("utf-8")  # the question after all the noise is answered
