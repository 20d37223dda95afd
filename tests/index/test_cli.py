"""The `verbatim` console script, run as a user runs it: a subprocess with its own settings."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from index.answers.features import FEATURES
from index.answers.scorer import AnswerScorer
from tests.conftest import MODEL_CACHE, SEED_ARTICLE

VERBATIM = str(Path(sys.executable).with_name("verbatim"))


def run(args: list[str], settings=None, stdin: str = "", extra_env: dict | None = None, cwd=None):
    env = {k: v for k, v in os.environ.items() if k not in {"DISCORD_TOKEN"}}
    env["MODEL_CACHE_DIR"] = str(MODEL_CACHE)
    if settings is not None:
        env.update({"DATA_DIR": str(settings.data_dir), "INDEX_DIR": str(settings.index_dir),
                    "CORPUS_DIR": str(settings.corpus_dir)})
    env.update(extra_env or {})
    # Run outside the repository so a developer's own .env cannot change the outcome.
    return subprocess.run([VERBATIM, *args], input=stdin, capture_output=True, text=True, env=env,
                          cwd=cwd or tempfile.gettempdir(), timeout=300)


def test_ask_json_contract(seed_settings):
    result = run(["ask", "--json", "How many civilians were killed?"], seed_settings)
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert set(payload) >= {"question", "answered", "answer", "citations", "timings_ms"}
    assert payload["answered"] is True and "973" in payload["answer"]
    assert set(payload["timings_ms"]) >= {"retrieve", "answer", "total"}
    article = SEED_ARTICLE.read_text(encoding="utf-8")
    citations = {c["n"]: c for c in payload["citations"]}
    assert {int(n) for n in re.findall(r"\[(\d+)\]", payload["answer"])} == set(citations) != set()
    for citation in payload["citations"]:
        assert set(citation) >= {"n", "doc_id", "title", "source", "url", "published", "quote", "passage_id"}
        assert citation["quote"] in article
    assert any("973" in c["quote"] for c in payload["citations"])


def test_ask_json_declines_what_the_sources_do_not_say(seed_settings):
    payload = json.loads(run(["ask", "--json", "What is the population of Damascus?"], seed_settings).stdout)
    assert payload["answered"] is False
    assert payload["answer"].startswith("The sources I have don't say")


@pytest.mark.parametrize(
    "question, message",
    [("", "empty"), ("   ", "empty"), ("x" * 10_000, "limit"), ("\x01\x02\x03", "empty")],
    ids=["empty", "whitespace", "10k", "control"],
)
def test_bad_questions_get_a_message_not_a_traceback(seed_settings, question, message):
    result = run(["ask", question], seed_settings)
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr
    as_json = run(["ask", "--json", question], seed_settings)
    assert message in json.loads(as_json.stdout)["error"]


def test_right_to_left_question_is_answered(seed_settings):
    result = run(["ask", "من هو وزير الخارجية الأمريكي الذي طالب بالمحاسبة؟"], seed_settings)
    assert result.returncode == 0 and "Rubio" in result.stdout and "English" in result.stdout


def test_missing_index_says_which_command_builds_it(tmp_path):
    result = run(["ask", "Who?"], extra_env={"DATA_DIR": str(tmp_path), "INDEX_DIR": ""})
    assert result.returncode == 1 and "verbatim index build" in result.stderr
    assert "Traceback" not in result.stderr


def test_search_sources_and_chat(seed_settings):
    hits = json.loads(run(["search", "--json", "--k", "2", "Marco Rubio"], seed_settings).stdout)["hits"]
    assert len(hits) == 2 and "Rubio" in hits[0]["text"] and hits[0]["similarity"] is not None
    documents = json.loads(run(["sources", "--json"], seed_settings).stdout)
    assert [d["doc_id"] for d in documents] == ["syria-vows-accountability"]
    chat = run(["chat"], seed_settings, stdin="How many civilians were killed?\n\nquit\n")
    assert chat.returncode == 0 and "973" in chat.stdout and "[1]" in chat.stdout


def test_index_build_names_broken_files_and_summarises(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(SEED_ARTICLE, corpus)
    (corpus / "broken.md").write_text("---\ntitle: [oops\n---\nText.\n", encoding="utf-8")
    result = run(["index", "build", "--corpus", str(corpus), "--index-dir", str(tmp_path / "idx")],
                 extra_env={"DATA_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert "broken.md" in result.stderr
    assert re.search(r"Indexed 1 documents into \d+ passages in [\d.]+ s \([\d.]+ passages/s;", result.stdout)


def test_start_without_token_or_terminal_answers_a_sample_question(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(SEED_ARTICLE, corpus)
    result = run(["start"], extra_env={"DATA_DIR": str(tmp_path / "var"), "CORPUS_DIR": str(corpus), "INDEX_DIR": ""},
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "building it" in result.stderr
    assert "973" in result.stdout and "[1]" in result.stdout and "timesofisrael.com" in result.stdout


def test_index_status_and_update_show_what_changed(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(SEED_ARTICLE, corpus)
    env = {"DATA_DIR": str(tmp_path / "var"), "CORPUS_DIR": str(corpus), "INDEX_DIR": ""}
    assert run(["index", "build"], extra_env=env).returncode == 0
    (corpus / "note.txt").write_text("Council vote\n\nThe council voted 7 to 2 to close the bridge.\n",
                                     encoding="utf-8")
    status = json.loads(run(["index", "status", "--json"], extra_env=env).stdout)
    assert status["corpus"]["added"] == ["note"] and status["model_matches"] is True
    assert status["index"]["documents"] == 1 and status["index"]["model"] == "all-MiniLM-L6-v2"
    update = run(["index", "update"], extra_env=env)
    assert update.returncode == 0 and "1 sentences of 1 documents embedded" in update.stdout
    assert "up to date" in run(["index", "status"], extra_env=env).stdout


def test_train_answerer_runs_when_the_current_scorer_no_longer_fits(tmp_path):
    # Adding a feature makes the shipped scorer unreadable ("Retrain it with `verbatim train-answerer`"):
    # retraining must not need the scorer it replaces.
    data = tmp_path / "data"
    paragraphs = {"squad2-sample": "The bridge over the river was finished in 1932. It carries a road and a railway.",
                  "arcd": "افتتح الجسر فوق النهر عام 1932. ويحمل طريقا وسكة حديد."}
    for folder, text in paragraphs.items():
        (data / folder).mkdir(parents=True)
        prefix = "train-" if folder == "arcd" else ""
        (data / folder / f"{prefix}corpus.jsonl").write_text(
            json.dumps({"id": "p1", "title": "The bridge", "text": text}, ensure_ascii=False) + "\n", encoding="utf-8")
        (data / folder / f"{prefix}queries.jsonl").write_text(
            '{"id": "x1", "question": "Who built the bridge?", "answerable": false}\n', encoding="utf-8")
    (data / "seed-dev").mkdir()
    shutil.copy(Path(__file__).parents[1] / "data" / "seed-dev-queries.jsonl", data / "seed-dev" / "queries.jsonl")
    stale = tmp_path / "stale.json"
    stale.write_text(json.dumps({"format": 1, "features": ["an", "older", "set"]}), encoding="utf-8")
    output = tmp_path / "scorer.json"
    result = run(["train-answerer", "--data", str(data), "--output", str(output), "--json"],
                 extra_env={"DATA_DIR": str(tmp_path / "var"), "INDEX_DIR": "", "ANSWER_SCORER": str(stale)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert AnswerScorer.load(output).features == FEATURES
