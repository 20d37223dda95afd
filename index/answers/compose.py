"""Composing an answer: the sentences of the retrieved passages most likely to answer, each cited.

The answer is a quotation, never a paraphrase, so it cannot say what the sources do not. Which
sentences, and whether any, is decided by the learned scorer (index/answers/scorer.py): below its
threshold, or when the question names something no retrieved source mentions, the answer declines
and offers the closest quotes, marked as such.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from index.answers.features import Candidate, Sources, candidates, source_language
from index.answers.figures import FigureReport, figure_history
from index.answers.scorer import AnswerScorer
from index.retrieval.language import is_english
from index.retrieval.question import ParsedQuestion, parse_question
from index.retrieval.search import Retrieval


@dataclass(frozen=True)
class Citation:
    n: int
    doc_id: str
    title: str
    source: str | None
    url: str | None
    published: str | None
    quote: str  # verbatim: article_text[start:end] == quote
    passage_id: str
    start: int
    end: int

    def to_json(self) -> dict:
        return {key: value for key, value in asdict(self).items() if key not in {"start", "end"}}


# What every front end says under a written answer (ANSWER_MODE=llm).
WRITTEN_NOTE = "Wording by a language model; quotes are the sources'."


@dataclass(frozen=True)
class Answer:
    question: str
    answered: bool
    text: str
    citations: list[Citation]
    language: str
    timings_ms: dict[str, float] = field(default_factory=dict)
    note: str | None = None
    confidence: float = 0.0  # the scorer's probability that the best sentence answers the question
    not_mentioned: list[str] = field(default_factory=list)  # names in the question no source mentions
    # extractive (quotes only), llm (every written sentence passed its check), llm-partial (some were
    # dropped), extractive-fallback (none passed, or the model failed): see index/answers/llm.py
    mode: str = "extractive"
    written: WritingReport | None = None  # how the model's sentences fared, when one was asked

    @property
    def worded_by_model(self) -> bool:
        return self.mode in {"llm", "llm-partial"}
    reports: list[FigureReport] = field(default_factory=list)  # differing figures, newest report first

    def to_json(self) -> dict:
        return {
            "mode": self.mode,
            **({"written": asdict(self.written)} if self.written else {}),
            "question": self.question,
            "answered": self.answered,
            "answer": self.text,
            "citations": [c.to_json() for c in self.citations],
            "timings_ms": self.timings_ms,
            "language": self.language,
            "note": self.note,
            "confidence": self.confidence,
            "not_mentioned": self.not_mentioned,
            "latest_report": self.reports[0].to_json() if self.reports else None,
            "earlier_reports": [r.to_json() for r in self.reports[1:]],
        }


@dataclass(frozen=True)
class WritingReport:
    kept: int  # written sentences shown
    dropped: int  # written sentences that failed their check (logged with the reason, never shown)
    problem: str | None = None  # why the model's answer ended early or was not used (timeout, HTTP 429, …)


@dataclass(frozen=True)
class AnswerPolicy:
    scorer: AnswerScorer
    max_sentences: int = 3
    candidate_passages: int = 5  # every sentence of this many of the best passages is a candidate


@dataclass(frozen=True)
class ScoredCandidate:
    candidate: Candidate
    probability: float


def score_candidates(question: ParsedQuestion, retrieval: Retrieval, sources: Sources,
                     policy: AnswerPolicy) -> list[ScoredCandidate]:
    """Every candidate sentence with its probability of answering the question, most likely first."""
    found = candidates(question, retrieval, sources, policy.candidate_passages)
    if not found:
        return []
    probabilities = policy.scorer.probabilities(np.stack([c.features for c in found]))
    scored = [ScoredCandidate(c, float(p)) for c, p in zip(found, probabilities, strict=True)]
    scored.sort(key=lambda s: (-s.probability, s.candidate.hit_rank, s.candidate.start))
    return scored


def compose_answer(question: ParsedQuestion, retrieval: Retrieval, sources: Sources, policy: AnswerPolicy,
                   scored: list[ScoredCandidate] | None = None) -> Answer:
    """`scored`: the candidates already scored (score_candidates), when the caller needs them too."""
    if scored is None:
        scored = score_candidates(question, retrieval, sources, policy)
    if question.context and retrieval.context_vector is not None and scored:
        # A follow-up wants what the earlier answer did not say: that answer's sentence goes last.
        earlier_question = parse_question(question.context, asked_on=question.asked_on)
        earlier = score_candidates(earlier_question, replace(retrieval, question=earlier_question,
                                                             query_vector=retrieval.context_vector,
                                                             own_vector=None, context_vector=None),
                                   sources, policy)
        if earlier:
            said = earlier[0].candidate.key
            scored = [s for s in scored if s.candidate.key != said] + [s for s in scored if s.candidate.key == said]
    note = retrieval.note
    if not question.english and scored and is_english(source_language(scored[0].candidate.hit)):
        note = " ".join(filter(None, [note, "Your question is not in English; these are quotations from "
                                            "English sources."]))
    confidence = scored[0].probability if scored else 0.0
    # What the question names that none of the retrieved articles mentions: whatever they say
    # is about something else, so say that plainly and offer what they do report, marked as such.
    unmentioned = named_nowhere(question, [s.candidate for s in scored])
    if unmentioned:
        return _decline(question, scored, note, confidence, unmentioned)
    picked = choose_sentences([(s.candidate.text, s.probability) for s in scored], policy.scorer,
                              policy.max_sentences)
    if not picked:
        return _decline(question, scored, note, confidence, ())
    history = figure_history(question, [(s.candidate, s.probability) for s in scored],
                             floor=FIGURE_FLOOR * scored[0].probability, limit=policy.max_sentences + 1)
    if history:
        return _figures_answer(question, history, note, confidence)
    chosen = [scored[i].candidate for i in picked]
    # Read in the order the sources tell it: by the source's rank, then by position in the article.
    first_rank: dict[str, int] = {}
    for sentence in chosen:
        first_rank.setdefault(sentence.hit.doc_id, sentence.hit_rank)
    chosen.sort(key=lambda s: (first_rank[s.hit.doc_id], s.start))
    citations = [cite_sentence(n, s) for n, s in enumerate(chosen, start=1)]
    text = " ".join(f"{s.text} [{c.n}]" for s, c in zip(chosen, citations, strict=True))
    return Answer(question.text, True, text, citations, question.language, note=note, confidence=round(confidence, 4))


# What introduces the earlier reports of a figure, in the question's language (English for the others).
EARLIER_REPORTS = {"en": "Earlier reports:", "ar": "تقارير سابقة:"}

# A sentence giving another figure for the asked count is quoted as an earlier (or later) report when
# the scorer finds it at least this likely, relative to the best sentence, to answer the question.
FIGURE_FLOOR = 0.1


def _figures_answer(question: ParsedQuestion, history, note: str | None, confidence: float) -> Answer:
    """Lead with the newest report of the asked figure, then the earlier ones, newest first, each with
    its outlet and date; the quotes stay verbatim."""
    citations = [cite_sentence(n, found.candidate) for n, found in enumerate(history, start=1)]
    reports = [FigureReport(c.n, found.figure, found.value, found.when.label(), c.source)
               for c, found in zip(citations, history, strict=True)]

    def quoted(citation: Citation, report: FigureReport) -> str:
        who = ", ".join(filter(None, [citation.source, report.date]))
        return f"{citation.quote} [{citation.n}] ({who})"

    lead = quoted(citations[0], reports[0])
    earlier = " ".join(quoted(c, r) for c, r in zip(citations[1:], reports[1:], strict=True))
    text = f"{lead} {EARLIER_REPORTS.get(question.language, EARLIER_REPORTS['en'])} {earlier}"
    return Answer(question.text, True, text, citations, question.language, note=note,
                  confidence=round(confidence, 4), reports=reports)


def choose_sentences(ranked: Sequence[tuple[str, float]], scorer: AnswerScorer, max_sentences: int) -> list[int]:
    """Which of the ranked (text, probability) candidates an answer quotes: none when the first is below
    the scorer's threshold; else it and those after it within `keep_ratio` of its probability, each text
    once. Training (index/answers/training.py) judges thresholds with this same rule."""
    if not ranked or ranked[0][1] < scorer.threshold:
        return []
    floor = max(scorer.threshold, scorer.keep_ratio * ranked[0][1])
    chosen: list[int] = []
    quoted: set[str] = set()
    for i, (text, probability) in enumerate(ranked):
        if len(chosen) >= max_sentences or probability < floor:
            break
        if text.strip().lower() in quoted:
            continue
        quoted.add(text.strip().lower())
        chosen.append(i)
    return chosen


def named_nowhere(question: ParsedQuestion, found: list[Candidate]) -> tuple[str, ...]:
    if not question.names or not found:
        return ()
    missing = set(question.names)
    for candidate in found:
        missing &= set(candidate.missing_names)
    return tuple(n for n in question.names if n in missing)


def cite_sentence(n: int, sentence: Candidate) -> Citation:
    hit = sentence.hit
    return Citation(
        n=n, doc_id=hit.doc_id, title=hit.title, source=hit.source, url=hit.url, published=hit.published,
        quote=sentence.text, passage_id=hit.passage_id, start=sentence.start, end=sentence.end,
    )


def _decline(question: ParsedQuestion, scored: list[ScoredCandidate], note: str | None, confidence: float,
             unmentioned: tuple[str, ...]) -> Answer:
    # Offer the closest sentence of each of the closest articles, so the reader can look further.
    citations: list[Citation] = []
    for entry in scored:
        if any(c.doc_id == entry.candidate.hit.doc_id for c in citations):
            continue
        citations.append(cite_sentence(len(citations) + 1, entry.candidate))
        if len(citations) == 3:
            break
    markers = "".join(f"[{c.n}]" for c in citations)
    if unmentioned:
        names = _join_names(unmentioned)
        lead = f"The sources don’t mention {names}."
        if citations:
            closest = " ".join(f"{c.quote} [{c.n}]" for c in citations[:2])
            text = f"{lead} The closest they report: {closest}"
            citations = citations[:2]
        else:
            text = lead
    elif citations:
        text = f"The sources I have don't say. The closest passages I found are cited below {markers}."
    else:
        text = "The sources I have don't say, and nothing in them comes close."
    return Answer(question.text, False, text, citations, question.language, note=note,
                  confidence=round(confidence, 4), not_mentioned=list(unmentioned))


def _join_names(names: tuple[str, ...]) -> str:
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " or " + names[-1]
