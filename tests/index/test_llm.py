"""Written answers (ANSWER_MODE=llm) against a local OpenAI-compatible server playing the model, over an
index of invented articles: each reply is kept, trimmed or replaced by the extractive answer."""

from __future__ import annotations

import json
import logging

import pytest

from index.answers.checks import Evidence, dates_in, names_in, numbers_in, problem_with, split_written
from index.engine import Engine
from index.evaluation import EvalQuestion, evaluate, summarise
from index.store.build import build_index
from tests.conftest import make_settings
from tests.index.llm_support import QUESTION, FakeModel, fake_model, llm_settings, write_corpus

SECRET = "sk-test-never-log-this-4242"  # noqa: S105 (a made-up key the logs must not show)


@pytest.fixture(scope="module")
def invented(tmp_path_factory, encoders):
    root = tmp_path_factory.mktemp("llm-index")
    settings = make_settings(root, write_corpus(root / "corpus"))
    build_index(settings, encoders=encoders)
    return settings


@pytest.fixture(scope="module")
def server():
    with fake_model() as running:
        yield running


def engine_for(invented, server, encoders, model: str, **overrides) -> Engine:
    return Engine.load(llm_settings(invented, server, model, **overrides), encoders=encoders)


def article_text(engine: Engine) -> str:
    return engine.article_text("velmora-flood")


# ---------------------------------------------------------------- the checks alone


def test_numbers_match_across_formats():
    assert numbers_in("1,200 and 1200 and ١٢٠٠ and ١٬٢٠٠ and one thousand two hundred") == {"1200"}
    assert numbers_in("1.2 million") == {"1.2", "1200000"} and "1200000" in numbers_in("1,200,000")
    assert numbers_in("twenty-five people, the 12th day, 40%") == {"25", "12", "40"}
    assert numbers_in("one of the residents") == set()  # a lone "one" is a pronoun more often than a number


def test_dates_match_across_formats():
    assert dates_in("on 12 April")[1] == dates_in("on April 12th")[1] == dates_in("2025-04-12")[1] == {(4, 12)}
    assert dates_in("في ١٢ نيسان")[1] == {(4, 12)}
    assert dates_in("they may march") == (set(), set())  # verbs, not months


def test_names_are_read_like_a_question_s_plus_a_capitalised_first_word():
    assert names_in("The move was ordered by Petra Lund.") == ["Petra Lund"]
    assert names_in("Lund ordered the move.") == ["Lund"]
    assert names_in("According to officials, it was closed.") == []


def test_each_check_names_its_reason():
    given = {1: Evidence("Mayor Ilsa Brandt said 1,200 residents were moved on 12 April.", "The Harbour Ledger",
                         "2025-04-14")}
    sentences, _ = split_written(
        "The Harbour Ledger reported that one thousand two hundred residents moved [1]. "
        "They moved on April 12 [1]. Petra Lund ordered it [1]. Some 300 left [1]. They left in May [1]. "
        "Brandt spoke [2]. Nobody was hurt.")
    problems = [problem_with(s, given) for s in sentences]
    assert problems[:2] == [None, None]
    assert problems[2] == "the name 'Petra Lund' is not in the sentences it cites"
    assert problems[3] == "the number 300 is not in the sentences it cites"
    assert problems[4] == "a date is not in the sentences it cites"
    assert problems[5] == "cites [2], which it was not given"
    assert problems[6] == "cites no sentence"


def test_streamed_text_gives_sentences_only_once_complete():
    assert split_written("Brandt spoke [1", final=False) == ([], "Brandt spoke [1")
    done, rest = split_written("Brandt spoke [1]. The U.S. team", final=False)
    assert [s.text for s in done] == ["Brandt spoke."] and rest == " The U.S. team"
    # "spoke. [1]" may still be followed by "[2]": it waits for the next words.
    assert split_written("Brandt spoke. [1]", final=False)[0] == []
    assert split_written("Brandt spoke. [1] [2] Next", final=False)[0][0].cites == (1, 2)


# ---------------------------------------------------------------- against the fake model


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_faithful_answer_is_shown_with_the_quotes_it_cites(invented, server, encoders, stream):
    engine = engine_for(invented, server, encoders, "faithful")
    shown = []
    answer = engine.ask(QUESTION, on_written=shown.append if stream else None)

    assert answer.mode == "llm" and answer.answered
    assert answer.text == ("Mayor Ilsa Brandt said one thousand two hundred residents were moved to the sports hall. "
                           "[1] The Kessel River flooded Velmora on April 12. [2]")
    assert [c.n for c in answer.citations] == [1, 2]
    assert "1,200 residents" in answer.citations[0].quote and "12 April" in answer.citations[1].quote
    for citation in answer.citations:  # the quotes stay the sources' own words
        assert article_text(engine)[citation.start:citation.end] == citation.quote
    assert answer.written is not None and (answer.written.kept, answer.written.dropped) == (2, 0)
    assert "write" in answer.timings_ms
    payload = answer.to_json()
    assert payload["mode"] == "llm" and payload["written"] == {"kept": 2, "dropped": 0, "problem": None}
    if stream:  # each checked sentence was shown as it passed, the first one alone
        assert [s.text for s in shown] == [answer.text.split(" [1] ")[0] + " [1]", answer.text]
    request = FakeModel.recorded.requests[-1]["body"]
    assert request["stream"] is stream and request["model"] == "faithful"
    prompt = request["messages"][-1]["content"]
    assert QUESTION in prompt and "(The Harbour Ledger, 2025-04-14)" in prompt
    assert "English" in request["messages"][0]["content"]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("model, dropped, never_shown", [
    ("invented-number", 1, "300"),
    ("invented-name", 1, "Petra Lund"),
    ("missing-citation", 2, "never seen"),
])
def test_a_sentence_that_fails_its_check_is_dropped_and_logged(invented, server, encoders, caplog, stream, model,
                                                                dropped, never_shown):
    engine = engine_for(invented, server, encoders, model)
    shown = []
    with caplog.at_level(logging.INFO, logger="verbatim.llm"):
        answer = engine.ask(QUESTION, on_written=shown.append if stream else None)

    assert answer.mode == "llm-partial"
    assert answer.written is not None and (answer.written.kept, answer.written.dropped) == (1, dropped)
    assert answer.text.endswith(". [1]") and "[2]" not in answer.text
    assert never_shown not in answer.text and all(never_shown not in s.text for s in shown)
    assert [c.n for c in answer.citations] == [1] and "1,200" in answer.citations[0].quote
    reasons = [r.getMessage() for r in caplog.records if r.getMessage().startswith("dropped a written sentence")]
    assert len(reasons) == dropped


@pytest.mark.parametrize("model, problem", [
    ("all-invented", "no written sentence passed its check"),
    ("refusal", "no written sentence passed its check"),
    ("refusal-field", "the model refused"),
    ("error", "HTTP 500"),
    ("rate-limited", "rate limited (HTTP 429)"),
    ("slow", "timed out after 0.5 s"),
])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_failures_fall_back_to_the_extractive_answer(invented, server, encoders, caplog, model, problem, stream):
    engine = engine_for(invented, server, encoders, model, llm_timeout_seconds=0.5, llm_api_key=SECRET)
    extractive = Engine.load(invented, encoders=encoders).ask(QUESTION)
    shown = []
    with caplog.at_level(logging.DEBUG):
        answer = engine.ask(QUESTION, on_written=shown.append if stream else None)

    assert answer.mode == "extractive-fallback" and shown == []
    assert answer.text == extractive.text and answer.citations == extractive.citations
    assert answer.written is not None and answer.written.kept == 0 and answer.written.problem == problem
    assert any(problem in r.getMessage() or "no written sentence" in r.getMessage() for r in caplog.records)
    # The key went to the endpoint, and nowhere into the logs (even though the failing server echoes it).
    assert FakeModel.recorded.requests[-1]["headers"]["authorization"] == f"Bearer {SECRET}"
    assert SECRET not in caplog.text and SECRET not in json.dumps(answer.to_json())


def test_the_key_is_not_in_the_settings_anyone_prints(invented, server):
    settings = llm_settings(invented, server, "faithful", llm_api_key=SECRET)
    assert SECRET not in repr(settings) and SECRET not in json.dumps(settings.model_dump(mode="json"))


def test_a_declined_question_is_not_reworded(invented, server, encoders):
    engine = engine_for(invented, server, encoders, "faithful")
    before = len(FakeModel.recorded.requests)
    answer = engine.ask("What is the population of the capital of Norway?")
    assert not answer.answered and answer.mode == "extractive"
    assert len(FakeModel.recorded.requests) == before  # the model was not asked


def test_eval_reports_the_share_of_written_sentences_kept(invented, server, encoders):
    engine = engine_for(invented, server, encoders, "invented-number")
    questions = [EvalQuestion("q1", QUESTION, answerable=True, expected=("1,200",))]
    summary = summarise(evaluate(engine, questions))
    assert summary["written"] == {"questions": 1, "llm": 0, "llm_partial": 1, "extractive_fallback": 0,
                                  "sentences": 2, "kept": 0.5, "dropped": 0.5}
    assert "written" not in summarise(evaluate(Engine.load(invented, encoders=encoders), questions))


def test_cli_ask_prints_the_written_answer_then_the_quotes(invented, server):
    from tests.index.test_cli import run

    host, port = server.server_address[:2]
    llm = {"ANSWER_MODE": "llm", "LLM_BASE_URL": f"http://{host}:{port}/v1", "LLM_MODEL": "invented-name",
           "LLM_API_KEY": SECRET}
    result = run(["ask", QUESTION], invented, extra_env=llm)
    assert result.returncode == 0, result.stderr
    out = " ".join(result.stdout.split())
    written = out.index("1,200 residents were moved to the sports hall, Mayor Ilsa Brandt said. [1]")
    quote = out.index("“Mayor Ilsa Brandt said 1,200 residents were moved to the sports hall overnight.”")
    assert written < quote and "Wording by a language model; quotes are the sources'." in out
    assert "Petra Lund" not in out and SECRET not in result.stdout + result.stderr

    payload = json.loads(run(["ask", "--json", QUESTION], invented, extra_env=llm).stdout)
    assert payload["mode"] == "llm-partial" and payload["written"] == {"kept": 1, "dropped": 1, "problem": None}
    assert [c["quote"] for c in payload["citations"]] == [
        "Mayor Ilsa Brandt said 1,200 residents were moved to the sports hall overnight."]


def test_a_reply_that_stalls_after_a_checked_sentence_keeps_that_sentence(invented, server, encoders):
    engine = engine_for(invented, server, encoders, "slow-stream", llm_timeout_seconds=0.5)
    shown = []
    answer = engine.ask(QUESTION, on_written=shown.append)

    # The first sentence was already shown when the model went quiet for longer than the timeout: it stays.
    assert answer.mode == "llm-partial" and [a.text for a in shown] == [answer.text]
    assert answer.written is not None and answer.written.kept == 1
    assert answer.written.problem == "timed out after 0.5 s"


def test_cli_eval_reports_the_share_of_written_sentences_kept(invented, server, tmp_path):
    from tests.index.test_cli import run

    queries = tmp_path / "queries.jsonl"
    queries.write_text(json.dumps({"id": "v1", "question": QUESTION, "answer_contains_any": ["1,200"],
                                   "answerable": True}) + "\n", encoding="utf-8")
    host, port = server.server_address[:2]
    llm = {"ANSWER_MODE": "llm", "LLM_BASE_URL": f"http://{host}:{port}/v1", "LLM_MODEL": "invented-number"}
    result = run(["eval", "--corpus", str(invented.corpus_dir), "--queries", str(queries),
                  "--index-dir", str(invented.index_dir)], invented, extra_env=llm)
    assert result.returncode == 0, result.stderr
    assert ("written answers: 0 whole, 1 partial, 0 fell back to quotes; of the model's 2 sentences "
            "0.500 kept, 0.500 dropped by their checks") in " ".join(result.stdout.split())
