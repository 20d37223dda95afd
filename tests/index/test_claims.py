"""Checking claims against the seed article with the real models and index, and measuring it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from index.answers.claims import DEFAULT_THRESHOLDS, ClaimThresholds, compare_figures
from index.claim_evaluation import (
    CollectedClaim,
    LabelledClaim,
    _best_relevances,
    _score,
    collect,
    load_claims,
    summarise,
    tune,
    verdicts,
)
from index.errors import InvalidQuestionError, VerbatimError
from index.retrieval.statement import read_statement, statement_figures
from tests.conftest import SEED_ARTICLE

ARTICLE_ID = "syria-vows-accountability"


def test_a_claim_with_the_reported_toll_is_supported_by_the_sentence_that_gives_it(seed_engine):
    checked = seed_engine.check("More than 973 civilians were killed in the violence.")

    assert checked.verdict == "supported"
    first = checked.sentences[0]
    assert first.stance == "supports" and "973 civilians" in first.citation.quote
    assert first.citation.title.startswith("Syria vows accountability")
    assert first.citation.source == "The Times of Israel" and first.citation.published == "2025-03-09"
    assert first.citation.url and "timesofisrael.com" in first.citation.url
    assert not checked.contradicting


def test_a_claim_with_a_wrong_figure_is_contradicted_and_says_which_figures_differ(seed_engine):
    checked = seed_engine.check("Only 50 civilians were killed.")

    assert checked.verdict == "contradicted"
    against = checked.contradicting[0]
    assert "973" in against.citation.quote
    assert against.reason == "gives 973 where the claim says 50"
    assert not checked.supporting


def test_security_force_figures_are_compared_with_the_security_force_figure(seed_engine):
    right = seed_engine.check("The Observatory said 125 members of the security forces were killed.")
    wrong = seed_engine.check("The Observatory said 400 members of the security forces were killed.")

    assert right.verdict == "supported" and "125 members" in right.supporting[0].citation.quote
    assert wrong.verdict == "contradicted"
    assert wrong.contradicting[0].reason == "gives 125 where the claim says 400"


def test_an_unrelated_claim_is_not_addressed(seed_engine):
    checked = seed_engine.check("Riverton Rovers won the regional football cup on penalties.")

    assert checked.verdict == "not addressed"
    assert checked.sentences == []
    assert checked.summary == "The sources I have don't address this claim."


def test_an_arabic_claim_is_checked_against_the_english_source(seed_engine):
    checked = seed_engine.check("قتل أكثر من 973 مدنيا")

    assert checked.language == "ar"
    assert checked.verdict == "supported"
    assert "973 civilians" in checked.supporting[0].citation.quote
    assert checked.note and "not in the sources' language" in checked.note


def test_quotes_are_verbatim_and_the_json_names_every_citation_field(seed_engine):
    for claim in ("More than 973 civilians were killed.", "Only 50 civilians were killed."):
        checked = seed_engine.check(claim)
        article = seed_engine.article_text(ARTICLE_ID)
        for judged in checked.sentences:
            assert article[judged.citation.start:judged.citation.end] == judged.citation.quote
        payload = json.loads(json.dumps(checked.to_json()))
        assert payload["verdict"] == checked.verdict and payload["claim"] == claim
        assert set(payload["sentences"][0]) >= {"stance", "reason", "n", "title", "source", "url", "published",
                                                "quote", "doc_id"}
        assert set(payload["timings_ms"]) == {"retrieve", "judge", "total"}


@pytest.mark.parametrize("claim", ["", "   ", "\x00\x01", "x" * 10_000])
def test_bad_claims_get_the_question_errors(seed_engine, claim):
    with pytest.raises(InvalidQuestionError):
        seed_engine.check(claim)


# ------------------------------------------------------------------ reading statements


def test_figures_know_what_they_count_and_skip_dates():
    figures = statement_figures("Since March 6, more than 973 civilians and 148 Assad loyalists were killed in 2025.")
    assert [(f.written, f.kind) for f in figures] == [("973", "count"), ("148", "count"), ("2025", "year")]
    assert "civilian" in figures[0].counts and "loyalist" in figures[1].counts
    assert statement_figures("fifty civilians, 2.5 million people, 12% of voters, ١٢٥ members")[0].value == 50
    figures = statement_figures("2.5 million people, 12% of voters, ١٢٥ members")
    assert [f.value for f in figures] == [2_500_000, 12, 125]
    assert statement_figures("12% of voters")[0].kind == "percent"


def test_figures_agree_within_rounding_and_differ_only_about_the_same_thing():
    claim = read_statement("Nearly 1,000 civilians were killed.").figures
    assert compare_figures(claim, read_statement("more than 973 civilians were killed").figures)[0] == "match"
    assert compare_figures(read_statement("50 civilians died").figures,
                           read_statement("973 civilians were killed").figures) == ("differ", ("50", "973"))
    # Another figure about something else is no contradiction, but no confirmation of the count either.
    assert compare_figures(read_statement("50 civilians died").figures,
                           read_statement("148 Assad loyalists were killed").figures) == ("missing", None)
    assert compare_figures((), read_statement("148 loyalists").figures) == ("none", None)


def test_negation_and_direction_are_read():
    assert read_statement("Turk did not call for calm").negated
    assert not read_statement("Turk called for calm").negated
    assert read_statement("Prices increased sharply").directions == {"up"}
    assert read_statement("Deaths fell").directions == {"down"}
    assert read_statement("more than 973 were killed").directions == frozenset()  # a qualifier, not a direction


# ------------------------------------------------------------------ measuring


def _claims_file(tmp_path, rows):
    path = tmp_path / "claims.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    return path


LABELLED = [
    {"id": "1", "question": "More than 973 civilians were killed.", "evidence": [ARTICLE_ID],
     "labels": {ARTICLE_ID: "SUPPORT"}},
    {"id": "2", "question": "Only 50 civilians were killed.", "evidence": [ARTICLE_ID],
     "labels": {ARTICLE_ID: "CONTRADICT"}},
    {"id": "3", "question": "Riverton Rovers won the regional football cup.", "evidence": [ARTICLE_ID], "labels": {}},
    {"id": "4", "question": "The Observatory said 400 members of the security forces were killed.",
     "evidence": [ARTICLE_ID], "labels": {ARTICLE_ID: "SUPPORT"}},  # labelled wrong on purpose
]


def test_load_claims_reads_labels_and_refuses_mixed_ones(tmp_path):
    claims = load_claims(_claims_file(tmp_path, LABELLED))
    assert [c.label for c in claims] == ["SUPPORT", "CONTRADICT", "NONE", "SUPPORT"]
    bad = _claims_file(tmp_path, [{"id": "9", "question": "x", "labels": {"a": "SUPPORT", "b": "CONTRADICT"}}])
    with pytest.raises(VerbatimError, match="all be SUPPORT or all CONTRADICT"):
        load_claims(bad)
    with pytest.raises(VerbatimError, match="needs `question`"):
        load_claims(_claims_file(tmp_path, [{"id": "9", "question": "x"}]))


def test_summary_counts_each_label_against_its_expected_verdict(seed_engine, tmp_path):
    collected = collect(seed_engine, load_claims(_claims_file(tmp_path, LABELLED)))
    summary = summarise(collected, DEFAULT_THRESHOLDS)

    labels = summary["labels"]
    assert labels["SUPPORT"]["claims"] == 2 and labels["SUPPORT"]["accuracy"] == 0.5  # claim 4 is contradicted
    assert labels["SUPPORT"]["verdicts"]["contradicted"] == 1
    assert labels["CONTRADICT"]["accuracy"] == 1.0 and labels["CONTRADICT"]["accuracy_quoting_evidence"] == 1.0
    assert labels["NONE"]["accuracy"] == 1.0
    assert summary["balanced_accuracy"] == round((0.5 + 1.0 + 1.0) / 3, 4)


def test_the_fast_search_scores_thresholds_exactly_as_judge_does(seed_engine, tmp_path):
    collected = collect(seed_engine, load_claims(_claims_file(tmp_path, LABELLED)))
    labels = np.array([("SUPPORT", "CONTRADICT", "NONE").index(c.claim.label) for c in collected])
    for thresholds in (DEFAULT_THRESHOLDS, ClaimThresholds(meaning_weight=0.8, addressed=0.4, supports=0.9,
                                                           contradicts_figure=0.95)):
        relevance = _best_relevances(collected, thresholds)
        fast = _score(relevance, labels, thresholds.addressed, thresholds.supports, {
            "figure": thresholds.contradicts_figure, "direction": thresholds.contradicts_direction,
            "negated_claim": thresholds.contradicts_negated_claim,
            "negated_source": thresholds.contradicts_negated_source})
        assert round(fast, 4) == summarise(collected, thresholds)["balanced_accuracy"]
    tuned, accuracy = tune(collected, DEFAULT_THRESHOLDS)
    assert accuracy >= summarise(collected, DEFAULT_THRESHOLDS)["balanced_accuracy"]
    assert [v for v, _ in verdicts(collected, tuned)][:3] == ["supported", "contradicted", "not addressed"]


def test_a_collected_claim_keeps_its_label(seed_engine):
    claim = LabelledClaim("x", "Only 50 civilians were killed.", "CONTRADICT", (ARTICLE_ID,))
    (collected,) = collect(seed_engine, [claim])
    assert isinstance(collected, CollectedClaim) and collected.claim is claim and collected.candidates
    assert SEED_ARTICLE.exists()


def test_check_and_claim_evaluation_judge_the_same_candidates(seed_engine):
    from index.answers.claims import judge

    claim = "Only 50 civilians were killed."
    parsed, found = seed_engine.claim_candidates(claim)
    (collected,) = collect(seed_engine, [LabelledClaim("x", claim, "CONTRADICT", (ARTICLE_ID,))])
    assert [c.candidate.key for c in collected.candidates] == [c.candidate.key for c in found]
    checked = seed_engine.check(claim)
    judged = judge(parsed.text, parsed.language, collected.candidates, DEFAULT_THRESHOLDS)
    assert (judged.verdict, [s.citation for s in judged.sentences]) == (checked.verdict,
                                                                        [s.citation for s in checked.sentences])
