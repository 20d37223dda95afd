import pytest

from index.errors import InvalidQuestionError, VerbatimError


@pytest.mark.parametrize("question", ["", "   \n\t ", "?!…", "\x00\x07"])
def test_empty_questions_get_a_clear_message(seed_engine, question):
    with pytest.raises(InvalidQuestionError, match="question"):
        seed_engine.ask(question)


def test_a_huge_question_is_refused_with_the_limit(seed_engine):
    with pytest.raises(InvalidQuestionError, match="limit is 1,000"):
        seed_engine.ask("killed " * 1500)


def test_control_characters_are_dropped(seed_engine):
    answer = seed_engine.ask("How many\x00 civilians\x1b were\u202e killed?\r\n")
    assert answer.question == "How many civilians were killed?"
    assert answer.answered and "973" in answer.text


def test_right_to_left_text_gets_a_normal_answer(seed_engine):
    answer = seed_engine.ask("\u202bكم عدد المدنيين الذين قتلوا؟\u202c")
    assert answer.language == "ar"
    assert answer.citations  # answered or declined, it cites what it found


def test_unknown_source_id_is_a_clear_error(seed_engine):
    with pytest.raises(VerbatimError, match="verbatim sources"):
        seed_engine.ask("Who?", doc_id="no-such-article")


# ---------------------------------------------------------------- issue 10

LONE_SURROGATE = "How many civilians were \udfff killed?"


def test_a_lone_surrogate_is_dropped_in_ask_search_and_context(seed_engine):
    answer = seed_engine.ask(LONE_SURROGATE)
    assert answer.question == "How many civilians were killed?"
    assert answer.answered and "973" in answer.text
    hits = seed_engine.search("Marco \ud800Rubio")
    assert hits and "Rubio" in hits[0].text
    follow_up = seed_engine.ask("And who \udc80 demanded accountability?", context="killed \udfff civilians \ud83d")
    assert follow_up.question == "And who demanded accountability?"


def test_a_lone_surrogate_in_an_arabic_question_is_dropped(seed_engine):
    answer = seed_engine.ask("كم عدد \udfff المدنيين الذين قتلوا؟")
    assert answer.language == "ar" and "\udfff" not in answer.question


def test_a_surrogate_pair_becomes_the_character_it_encodes(seed_engine):
    from index.engine import clean_question

    assert clean_question("killed \ud83d\ude00 civilians", 100) == "killed \U0001F600 civilians"
    assert clean_question("killed\ufffe \uffff civilians\U0010ffff\ufdd0", 100) == "killed civilians"


def test_a_question_of_only_surrogates_is_empty(seed_engine):
    with pytest.raises(InvalidQuestionError, match="empty"):
        seed_engine.ask("\udfff\ud800 \udc00")


def test_a_huge_question_is_refused_before_it_is_cleaned(seed_engine):
    import time

    started = time.perf_counter()
    with pytest.raises(InvalidQuestionError, match="limit is 1,000"):
        seed_engine.ask("a" * 10_000_000)
    with pytest.raises(InvalidQuestionError, match="limit is 1,000"):
        seed_engine.search("a" * 10_000_000)
    with pytest.raises(InvalidQuestionError, match="limit is 1,000"):
        seed_engine.ask("Who?", context="a" * 10_000_000)
    assert time.perf_counter() - started < 0.2


def test_spaces_around_a_question_do_not_count_towards_the_limit(seed_engine):
    answer = seed_engine.ask(" " * 2_500 + "How many civilians were killed?" + "\n" * 500)
    assert answer.question == "How many civilians were killed?"


@pytest.mark.parametrize("k", [0, -1, 51, 10**9, True, False, 2.0, "3", [3]])
def test_k_must_be_a_whole_number_in_range(seed_engine, k):
    with pytest.raises(InvalidQuestionError, match="k must be a whole number from 1 to 50"):
        seed_engine.ask("How many civilians were killed?", k=k)
    with pytest.raises(InvalidQuestionError, match="k must be a whole number from 1 to 50"):
        seed_engine.search("How many civilians were killed?", k=k)


def test_k_in_range_is_used(seed_engine):
    assert len(seed_engine.search("Marco Rubio", k=1)) == 1
    assert seed_engine.ask("How many civilians were killed?", k=50).answered


@pytest.mark.parametrize("doc_id", [5, b"syria-vows-accountability", ["syria-vows-accountability"]])
def test_doc_id_must_be_text(seed_engine, doc_id):
    with pytest.raises(InvalidQuestionError, match="source id must be text"):
        seed_engine.ask("Who?", doc_id=doc_id)
    with pytest.raises(InvalidQuestionError, match="source id must be text"):
        seed_engine.search("Who?", doc_id=doc_id)


@pytest.mark.parametrize("context", [5, b"bytes"])
def test_context_must_be_text(seed_engine, context):
    with pytest.raises(InvalidQuestionError):
        seed_engine.ask("Who?", context=context)


# ---------------------------------------------------------------- the console script, with bytes that are not UTF-8

import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402

from tests.conftest import MODEL_CACHE, SEED_ARTICLE  # noqa: E402
from tests.index.test_cli import VERBATIM  # noqa: E402

# A terminal with a UTF-8 locale reads and writes strictly; the C locale lets bad bytes through. Both.
IO_MODES = {"strict": {"PYTHONIOENCODING": "utf-8:strict"}, "c-locale": {"LC_ALL": "C"}}


def run_bytes(args: list[str | bytes], settings=None, stdin: bytes = b"", io: str = "strict", env: dict | None = None):
    environment = {k: v for k, v in os.environ.items() if k not in {"DISCORD_TOKEN", "PYTHONIOENCODING", "LC_ALL"}}
    environment.update(MODEL_CACHE_DIR=str(MODEL_CACHE), **IO_MODES[io], **(env or {}))
    if settings is not None:
        environment.update(DATA_DIR=str(settings.data_dir), INDEX_DIR=str(settings.index_dir),
                           CORPUS_DIR=str(settings.corpus_dir))
    result = subprocess.run([VERBATIM, *args], input=stdin, capture_output=True, env=environment,
                            cwd=tempfile.gettempdir(), timeout=300)
    stdout, stderr = result.stdout.decode("utf-8"), result.stderr.decode("utf-8")  # output is always UTF-8
    assert "Traceback" not in stderr + stdout, stderr
    return result.returncode, stdout, stderr


@pytest.mark.parametrize("io", IO_MODES)
def test_invalid_utf8_in_a_question_argument_is_answered(seed_settings, io):
    code, stdout, _ = run_bytes(["ask", b"How many \xff civilians were killed?"], seed_settings, io=io)
    assert code == 0 and "973" in stdout
    code, stdout, _ = run_bytes(["search", "--json", b"Marco \xffRubio"], seed_settings, io=io)
    payload = json.loads(stdout)
    assert code == 0 and payload["query"] == "Marco \ufffdRubio" and "Rubio" in payload["hits"][0]["text"]


def test_invalid_utf8_in_a_source_id_is_a_clear_error(seed_settings):
    code, _, stderr = run_bytes(["ask", "--source", b"\xffsyria", "Who?"], seed_settings)
    assert code == 1 and "No source has the id '\ufffdsyria'" in stderr
    code, stdout, _ = run_bytes(["search", "--json", "--source", b"\xff", "Who?"], seed_settings)
    assert code == 1 and "No source has the id" in json.loads(stdout)["error"]


@pytest.mark.parametrize("io", IO_MODES)
def test_chat_answers_around_lines_that_are_not_utf8_and_ends_on_eof(seed_settings, io):
    lines = (b"How many \xff civilians were killed?\n\xfe\xfe\n\x00\x01\n" + b"\xc3" * 5000
             + b"\nWho called for accountability?\n")
    code, stdout, stderr = run_bytes(["chat"], seed_settings, stdin=lines, io=io)
    assert code == 0
    assert "973" in stdout and "Rubio" in stdout  # the questions before and after the bad lines
    assert "no words" in stderr and "empty" in stderr and "limit" in stderr


def test_paths_that_are_not_utf8_are_used_or_refused_clearly(tmp_path, seed_corpus):
    corpus = os.fsencode(tmp_path) + b"/corpus-\xff"
    os.mkdir(corpus)
    shutil.copy(SEED_ARTICLE, os.fsdecode(corpus))
    env = {"DATA_DIR": str(tmp_path), "CORPUS_DIR": os.fsdecode(corpus), "INDEX_DIR": ""}
    code, stdout, stderr = run_bytes(["index", "build", "--corpus", corpus], env=env)
    assert code == 0 and "Indexed 1 documents" in stdout, stderr
    code, stdout, stderr = run_bytes(["index", "status", "--json"], env=env)  # prints CORPUS_DIR on stdout
    assert code == 0 and json.loads(stdout)["corpus"]["folder"] == os.fsdecode(corpus), stderr
    code, _, stderr = run_bytes(["index", "build", "--corpus", corpus, "--index-dir", corpus + b"/idx"], env=env)
    assert code == 1 and "not UTF-8" in stderr and "idx" in stderr
    code, _, stderr = run_bytes(["index", "build", "--corpus", b"/nowhere-\xff"], env=env)
    assert code == 1 and "no such file or folder" in stderr


def test_eval_with_a_queries_file_that_is_not_utf8_says_so(tmp_path, seed_corpus):
    queries = tmp_path / "queries.jsonl"
    queries.write_bytes('{"question": "Caf\u00e9?"}\n'.encode("latin-1"))
    code, stdout, _ = run_bytes(["eval", "--json", "--corpus", str(seed_corpus), "--queries", str(queries)],
                                env={"DATA_DIR": str(tmp_path)})
    assert code == 1 and "UTF-8" in json.loads(stdout)["error"]
    code, stdout, _ = run_bytes(["eval", "--json", "--corpus", str(seed_corpus), "--queries", b"/nowhere-\xff"],
                                env={"DATA_DIR": str(tmp_path)})
    assert code == 1 and "cannot read the questions" in json.loads(stdout)["error"]


@pytest.mark.parametrize("field", ["evidence", "answer_contains_any"])
def test_an_eval_question_with_a_field_of_the_wrong_type_is_named(field):
    from index.evaluation import parse_question

    with pytest.raises(VerbatimError, match=f"queries.jsonl:3: `{field}` must be a list"):
        parse_question({"question": "Who?", field: 5}, "queries.jsonl:3")
    assert parse_question({"question": "Who?", field: "Rubio"}, "q:1") != parse_question({"question": "Who?"}, "q:1")
