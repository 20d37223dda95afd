"""The evaluation's arithmetic, pinned on hand-made rankings, and `verbatim eval` on a tiny real corpus."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from bot.cli import app
from index.answers.compose import Citation
from index.evaluation import (
    EvalQuestion,
    QuestionResult,
    as_off_topic,
    contains_expected,
    document_ranking,
    evaluate,
    hit_at,
    ndcg_at,
    parse_question,
    percentile,
    quotes_verbatim,
    reciprocal_rank,
    summarise,
)
from tests.index.quality_support import build_engine, write_jsonl

# ---------------------------------------------------------------- metric arithmetic

RANKED = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"]


def test_a_document_counts_once_at_its_best_passage():
    assert document_ranking(["x", "y", "x", "z", "y"]) == ["x", "y", "z"]


@pytest.mark.parametrize(
    ("relevant", "k", "expected"),
    [({"a"}, 1, 1.0), ({"b"}, 1, 0.0), ({"e"}, 5, 1.0), ({"f"}, 5, 0.0), ({"j"}, 10, 1.0), ({"k"}, 10, 0.0),
     ({"zz"}, 10, 0.0), ({"f", "b"}, 5, 1.0)],
)
def test_hit_at_k(relevant, k, expected):
    assert hit_at(RANKED, relevant, k) == expected


def test_reciprocal_rank_is_one_over_the_first_relevant_rank_within_ten():
    assert reciprocal_rank(RANKED, {"c"}) == pytest.approx(1 / 3)
    assert reciprocal_rank(RANKED, {"d", "b"}) == pytest.approx(1 / 2)
    assert reciprocal_rank(RANKED, {"j"}) == pytest.approx(1 / 10)
    assert reciprocal_rank(RANKED, {"k"}) == 0.0  # rank 11 is past the cut-off
    assert reciprocal_rank([], {"a"}) == 0.0


def test_ndcg_with_one_relevant_document():
    assert ndcg_at(RANKED, {"a"}) == 1.0
    assert ndcg_at(RANKED, {"c"}) == pytest.approx(1 / math.log2(4))  # 0.5
    assert ndcg_at(RANKED, {"k"}) == 0.0


def test_ndcg_with_two_relevant_documents_divides_by_the_perfect_ranking():
    # Found at ranks 2 and 4; a perfect ranking has them at 1 and 2.
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    ideal = 1 + 1 / math.log2(3)
    assert ndcg_at(RANKED, {"b", "d"}) == pytest.approx(dcg / ideal)
    assert ndcg_at(RANKED, {"b", "d"}) == pytest.approx(0.6509, abs=1e-4)
    # A relevant document that was never retrieved still counts in the ideal.
    assert ndcg_at(RANKED, {"a", "zz"}) == pytest.approx(1 / ideal)


def test_percentiles_interpolate_between_ranks():
    assert percentile([40.0, 10.0, 30.0, 20.0], 50) == pytest.approx(25.0)
    assert percentile([10.0, 20.0, 30.0, 40.0], 95) == pytest.approx(38.5)
    assert percentile([7.0], 95) == 7.0
    assert percentile([], 50) == 0.0


def test_expected_strings_match_whatever_the_case_spacing_or_arabic_vowels():
    assert contains_expected("Ahmed  al-Sharaa said", ["ahmed al-sharaa"])
    assert contains_expected("في السنة الثانية", ["فِي السَّنَةِ الثانية"])
    assert not contains_expected("Ahmed said", ["al-Sharaa", ""])


def test_question_formats():
    seed = parse_question({"id": "d1", "question": "Q?", "answerable": True, "answer_contains_any": ["x", "y"]})
    assert (seed.answerable, seed.expected, seed.evidence) == (True, ("x", "y"), ())
    arcd = parse_question({"id": "7", "question": "س؟", "answer": "ج", "answers": ["ج", "د"], "evidence": ["p1"]})
    assert (arcd.answerable, arcd.expected, arcd.evidence) == (True, ("ج", "د"), ("p1",))
    scifact = parse_question({"id": "3", "question": "Claim.", "answer": None, "evidence": ["123"]})
    assert (scifact.answerable, scifact.expected, scifact.evidence) == (None, (), ("123",))
    assert as_off_topic(scifact) == EvalQuestion("3", "Claim.", (), False, ())


def _citation(doc_id: str, start: int, end: int, quote: str) -> Citation:
    return Citation(1, doc_id, "t", None, None, None, quote, f"{doc_id}#0", start, end)


def test_a_quote_is_verbatim_only_when_it_is_the_article_text_at_its_offsets():
    articles = {"d": "One sentence. Another sentence."}
    assert quotes_verbatim([_citation("d", 14, 31, "Another sentence.")], articles.__getitem__)
    assert not quotes_verbatim([_citation("d", 14, 31, "Another  sentence.")], articles.__getitem__)
    assert not quotes_verbatim([_citation("d", 0, 13, "Another sentence.")], articles.__getitem__)


def _result(id_, ranked, evidence, answerable, answered, right, verbatim=True, total=10.0):
    return QuestionResult(id_, "q", tuple(ranked), tuple(evidence), answerable, answered, "", right, verbatim,
                          {"retrieve": total / 2, "answer": total / 2, "total": total})


def test_summary_of_hand_made_results():
    results = [
        _result("1", ["a", "b"], ["a"], True, True, True, total=10),
        _result("2", ["a", "b", "c"], ["c"], True, True, False, total=20),
        _result("3", [], [], True, False, None, total=30),
        _result("4", [], [], False, False, None, total=40),
        _result("5", [], [], False, True, None, verbatim=False, total=50),
    ]
    summary = summarise(results)
    assert summary["retrieval"] == {"questions": 2, "hit@1": 0.5, "hit@5": 1.0, "hit@10": 1.0,
                                    "mrr@10": pytest.approx((1 + 1 / 3) / 2, abs=1e-4),
                                    "ndcg@10": pytest.approx((1 + 0.5) / 2, abs=1e-4)}
    answers = summary["answers"]
    assert answers["answerable"] == 3 and answers["answerable_answered"] == pytest.approx(2 / 3, abs=1e-4)
    assert answers["answerable_right"] == 0.5  # of the two with expected strings, one answered right
    assert answers["unanswerable"] == 2 and answers["unanswerable_declined"] == 0.5
    assert answers["quotes_verbatim"] == 0.8
    assert summary["latency_ms"]["total"] == {"p50": 30.0, "p95": 48.0}


# ---------------------------------------------------------------- on a real (tiny) index

TINY_CORPUS = [
    {"id": "volcano", "title": "Volcano erupts in Iceland",
     "text": "A volcano erupted on the Reykjanes peninsula on Monday. Lava reached the edge of Grindavik. "
             "About 3,700 residents were evacuated before the eruption."},
    {"id": "election", "title": "Election results in Portugal",
     "text": "The centre-right alliance won the Portuguese general election on Sunday. "
             "Luis Montenegro is expected to become prime minister. Turnout was 66 percent."},
    {"id": "football", "title": "Cup final",
     "text": "Manchester United beat Manchester City 2-1 in the FA Cup final at Wembley. "
             "Kobbie Mainoo scored the winning goal."},
    {"id": "bees", "title": "Bee decline",
     "text": "Wild bee populations fell sharply across Europe last year. Researchers blame pesticides and "
             "the loss of wildflower meadows."},
]
TINY_QUESTIONS = [
    {"id": "q1", "question": "How many residents were evacuated before the eruption?", "evidence": ["volcano"],
     "answerable": True, "answer_contains_any": ["3,700"]},
    {"id": "q2", "question": "Who scored the winning goal in the cup final?", "evidence": ["football"],
     "answerable": True, "answer_contains_any": ["Kobbie Mainoo"]},
    {"id": "q3", "question": "What do researchers blame for the decline of wild bees?", "evidence": ["bees"],
     "answerable": True, "answer_contains_any": ["pesticides"]},
    {"id": "q4", "question": "What is the recipe for a good sourdough bread?", "answerable": False},
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, encoders):
    folder = tmp_path_factory.mktemp("tiny")
    corpus = write_jsonl(folder / "corpus.jsonl", TINY_CORPUS)
    queries = write_jsonl(folder / "queries.jsonl", TINY_QUESTIONS)
    return corpus, queries, build_engine(corpus, folder / "index", encoders)


def test_evaluate_ranks_documents_and_judges_answers_on_a_real_index(tiny):
    _corpus, queries, engine = tiny
    from index.evaluation import load_questions

    results = evaluate(engine, load_questions(queries))
    by_id = {r.id: r for r in results}
    for id_ in ("q1", "q2", "q3"):
        assert by_id[id_].ranked_docs[0] == by_id[id_].evidence[0]
        assert len(set(by_id[id_].ranked_docs)) == len(by_id[id_].ranked_docs) == 4
        assert by_id[id_].answered and by_id[id_].right, by_id[id_].answer
    assert not by_id["q4"].answered
    summary = summarise(results)
    assert summary["retrieval"]["ndcg@10"] == 1.0 and summary["retrieval"]["questions"] == 3
    assert summary["answers"]["answerable_right"] == 1.0
    assert summary["answers"]["unanswerable_declined"] == 1.0
    assert summary["answers"]["quotes_verbatim"] == 1.0
    assert all(r.timings_ms["total"] >= r.timings_ms["retrieve"] > 0 for r in results)


def test_eval_command_prints_one_json_object_with_figures_and_settings(tiny, tmp_path):
    corpus, queries, _engine = tiny
    runner = CliRunner()
    index_dir = tmp_path / "kept"
    first = runner.invoke(app, ["eval", "--corpus", str(corpus), "--queries", str(queries), "--json",
                                "--index-dir", str(index_dir)], env={"RERANKER_MODEL": ""})
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert report["questions"] == 4 and report["index"]["reused"] is False
    assert report["retrieval"]["hit@1"] == 1.0
    assert report["answers"]["quotes_verbatim"] == 1.0
    assert set(report["latency_ms"]) == {"retrieve", "answer", "total"}
    assert report["settings"]["retrieval"] == "hybrid" and "discord_token" not in report["settings"]
    # The same corpus and models: the kept index is reused, not rebuilt.
    second = runner.invoke(app, ["eval", "--corpus", str(corpus), "--queries", str(queries), "--json",
                                 "--index-dir", str(index_dir), "--off-topic"])
    assert second.exit_code == 0, second.output
    again = json.loads(second.stdout)
    assert again["index"]["reused"] is True
    assert again["answers"]["unanswerable"] == 4 and again["retrieval"]["questions"] == 0


def test_eval_command_names_a_broken_question_file(tiny, tmp_path):
    corpus, _queries, _engine = tiny
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"id": "x", "question": "fine?"}\nnot json\n', encoding="utf-8")
    result = CliRunner().invoke(app, ["eval", "--corpus", str(corpus), "--queries", str(broken)])
    assert result.exit_code == 1
    assert "broken.jsonl:2" in result.output
