"""Measuring quality: retrieval at document level, answers, refusals, quotes and latency.

The metric functions are pure and small so tests can pin their arithmetic; `evaluate` runs a loaded
engine over a question file and `summarise` turns the per-question results into the figures that
`verbatim eval` prints.

Question files are JSON Lines, one question a line (the formats of `../shared/data/`):
- `evidence`: the corpus ids of the documents that answer it (retrieval metrics need these);
- `answerable` and `answer_contains_any` (the seed-dev format), or `answer` / `answers` (ARCD):
  the answer metrics need these. A question with an `answer` is answerable.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import statistics
import time
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from index.errors import VerbatimError

_ARABIC_MARKS = re.compile(r"[\u0610-\u061A\u064B-\u065F\u0670\u06D6-\u06ED\u0640]")
RETRIEVAL_CUTOFFS = (1, 5, 10)


# ---------------------------------------------------------------- questions


@dataclass(frozen=True)
class EvalQuestion:
    id: str
    question: str
    evidence: tuple[str, ...] = ()
    answerable: bool | None = None  # None: the file does not say
    expected: tuple[str, ...] = ()  # any one of these in the answer text counts as right
    asked_on: dt.date | None = None  # `question_date` or `asked_at`: the question is asked as on that day


def parse_question(record: dict, where: str = "") -> EvalQuestion:
    question = record.get("question")
    if not isinstance(question, str) or not question.strip():
        raise VerbatimError(f"{where}: a question line needs a non-empty `question`")
    evidence = tuple(_strings(record, "evidence", where))
    expected: list[str] = [a for a in _strings(record, "answer_contains_any", where) if a.strip()]
    answers = record.get("answers")
    if isinstance(answers, list):
        expected += [str(a) for a in answers if str(a).strip()]
    if isinstance(record.get("answer"), str) and record["answer"].strip():
        expected.append(record["answer"])
    answerable = record.get("answerable")
    if not isinstance(answerable, bool):
        answerable = True if expected else None
    return EvalQuestion(
        id=str(record.get("id") or where),
        question=question,
        evidence=evidence,
        answerable=answerable,
        expected=tuple(dict.fromkeys(expected)),
        asked_on=_asked_on(record, where),
    )


def _asked_on(record: dict, where: str) -> dt.date | None:
    value = record.get("question_date") or record.get("asked_at")
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(str(value).strip()[:10])
    except ValueError:
        raise VerbatimError(f"{where}: `question_date`/`asked_at` must be a date, YYYY-MM-DD") from None


def _strings(record: dict, key: str, where: str) -> list[str]:
    """A field holding a list of strings (one string counts as a list of one)."""
    value = record.get(key) or []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise VerbatimError(f"{where}: `{key}` must be a list of strings")
    return [str(item) for item in value]


def as_off_topic(question: EvalQuestion) -> EvalQuestion:
    """The question asked of a corpus it is not about: it should be declined, and it has no evidence."""
    return EvalQuestion(id=question.id, question=question.question, answerable=False)


def jsonl_records(path: Path, what: str) -> list[tuple[str, dict[str, Any]]]:
    """Each non-blank line of a JSON Lines file of `what` ("questions", "claims") as (where, object),
    where is `path:line` for messages; a file that cannot be read or a bad line says which and why."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise VerbatimError(f"{path}: cannot read the {what} ({error.strerror or error})") from error
    except UnicodeDecodeError as error:
        raise VerbatimError(f"{path}: not UTF-8 text (byte 0x{error.object[error.start]:02x} at byte "
                            f"{error.start}); save it as UTF-8") from error
    records: list[tuple[str, dict[str, Any]]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise VerbatimError(f"{path}:{number}: not valid JSON ({error.msg})") from error
        if not isinstance(record, dict):
            raise VerbatimError(f"{path}:{number}: expected an object per line")
        records.append((f"{path}:{number}", record))
    if not records:
        raise VerbatimError(f"{path}: no {what} in it")
    return records


def load_questions(path: Path) -> list[EvalQuestion]:
    return [parse_question(record, where) for where, record in jsonl_records(path, "questions")]


# ---------------------------------------------------------------- retrieval metrics


def document_ranking(doc_ids: Iterable[str]) -> list[str]:
    """Passages' document ids, best first, each document once (at its best passage's place)."""
    return list(dict.fromkeys(doc_ids))


def hit_at(ranked: Sequence[str], relevant: Iterable[str], k: int) -> float:
    """1.0 when any relevant document is among the first `k`, else 0.0."""
    wanted = set(relevant)
    return 1.0 if any(doc in wanted for doc in ranked[:k]) else 0.0


def reciprocal_rank(ranked: Sequence[str], relevant: Iterable[str], k: int = 10) -> float:
    """1 / rank of the first relevant document within the first `k`; 0.0 when there is none."""
    wanted = set(relevant)
    for rank, doc in enumerate(ranked[:k], start=1):
        if doc in wanted:
            return 1.0 / rank
    return 0.0


def ndcg_at(ranked: Sequence[str], relevant: Iterable[str], k: int = 10) -> float:
    """Binary-relevance nDCG@k: DCG of the ranking over the DCG of a perfect one (as BEIR/MTEB)."""
    wanted = set(relevant)
    if not wanted:
        return 0.0
    dcg = sum(1.0 / math.log2(rank + 1) for rank, doc in enumerate(ranked[:k], start=1) if doc in wanted)
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(wanted), k) + 1))
    return dcg / ideal


# ---------------------------------------------------------------- answer metrics


def normalise_for_match(text: str) -> str:
    """Case, width, Arabic short vowels and white space do not decide whether an answer is right."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = _ARABIC_MARKS.sub("", text)
    text = text.replace("’", "'").replace("‘", "'")
    return " ".join(text.split())


def contains_expected(answer_text: str, expected: Iterable[str]) -> bool:
    haystack = normalise_for_match(answer_text)
    return any(normalise_for_match(e) and normalise_for_match(e) in haystack for e in expected)


def quotes_verbatim(citations: Sequence[object], article_text: Callable[[str], str]) -> bool:
    """Every citation's quote is exactly the article's text between its offsets."""
    for citation in citations:
        text = article_text(citation.doc_id)  # type: ignore[attr-defined]
        if text[citation.start : citation.end] != citation.quote or not citation.quote:  # type: ignore[attr-defined]
            return False
    return True


# ---------------------------------------------------------------- latency


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation between ranks (numpy's default)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# ---------------------------------------------------------------- running


@dataclass(frozen=True)
class QuestionResult:
    id: str
    question: str
    ranked_docs: tuple[str, ...]
    evidence: tuple[str, ...]
    answerable: bool | None
    answered: bool
    answer: str
    right: bool | None  # an expected string is in the answer (None: nothing expected)
    verbatim: bool
    timings_ms: dict[str, float] = field(default_factory=dict)
    mode: str = "extractive"  # see Answer.mode
    written_kept: int = 0  # ANSWER_MODE=llm: the model's sentences shown, and those dropped by their checks
    written_dropped: int = 0


def mean(values: Iterable[float]) -> float | None:
    values = list(values)
    return round(statistics.fmean(values), 4) if values else None


def retrieval_metrics(results: Sequence[QuestionResult], k: int = 10) -> dict[str, float | int | None]:
    judged = [r for r in results if r.evidence]
    metrics: dict[str, float | int | None] = {"questions": len(judged)}
    for cutoff in RETRIEVAL_CUTOFFS:
        metrics[f"hit@{cutoff}"] = mean(hit_at(r.ranked_docs, r.evidence, cutoff) for r in judged)
    metrics[f"mrr@{k}"] = mean(reciprocal_rank(r.ranked_docs, r.evidence, k) for r in judged)
    metrics[f"ndcg@{k}"] = mean(ndcg_at(r.ranked_docs, r.evidence, k) for r in judged)
    return metrics


def answer_metrics(results: Sequence[QuestionResult]) -> dict[str, float | int | None]:
    answerable = [r for r in results if r.answerable is True]
    with_expected = [r for r in answerable if r.right is not None]
    unanswerable = [r for r in results if r.answerable is False]
    return {
        "answerable": len(answerable),
        "answerable_answered": mean(1.0 if r.answered else 0.0 for r in answerable),
        "answerable_right": mean(1.0 if r.answered and r.right else 0.0 for r in with_expected),
        "unanswerable": len(unanswerable),
        "unanswerable_declined": mean(0.0 if r.answered else 1.0 for r in unanswerable),
        "answered": mean(1.0 if r.answered else 0.0 for r in results),
        "quotes_verbatim": mean(1.0 if r.verbatim else 0.0 for r in results),
    }


def latency_metrics(results: Sequence[QuestionResult]) -> dict[str, dict[str, float]]:
    figures: dict[str, dict[str, float]] = {}
    for stage in ("retrieve", "answer", "write", "total"):
        values = [r.timings_ms[stage] for r in results if stage in r.timings_ms]
        if stage == "write" and not values:
            continue  # only ANSWER_MODE=llm writes
        figures[stage] = {"p50": round(percentile(values, 50), 2), "p95": round(percentile(values, 95), 2)}
    return figures


def writing_metrics(results: Sequence[QuestionResult]) -> dict[str, float | int | None]:
    """ANSWER_MODE=llm: how the questions were answered, and the share of the model's sentences kept."""
    written = [r for r in results if r.mode != "extractive"]  # the questions the model was asked
    sentences = sum(r.written_kept + r.written_dropped for r in written)
    kept = sum(r.written_kept for r in written)
    return {
        "questions": len(written),
        **{mode.replace("-", "_"): sum(1 for r in written if r.mode == mode)
           for mode in ("llm", "llm-partial", "extractive-fallback")},
        "sentences": sentences,
        "kept": round(kept / sentences, 4) if sentences else None,
        "dropped": round(1 - kept / sentences, 4) if sentences else None,
    }


def summarise(results: Sequence[QuestionResult], k: int = 10) -> dict:
    summary = {
        "questions": len(results),
        "retrieval": retrieval_metrics(results, k),
        "answers": answer_metrics(results),
        "latency_ms": latency_metrics(results),
    }
    if any(r.mode != "extractive" for r in results):
        summary["written"] = writing_metrics(results)
    return summary


def evaluate(engine, questions: Sequence[EvalQuestion], k: int = 10,
             progress: Callable[[int, int], None] | None = None) -> list[QuestionResult]:
    """Ask every question (timed, as a user would) and rank documents for it (for the retrieval metrics)."""
    # Enough passages to reach k distinct documents even when documents have several passages.
    passages_for_ranking = max(engine.settings.candidate_pool, 5 * k)
    results: list[QuestionResult] = []
    for number, item in enumerate(questions, start=1):
        answer = engine.ask(item.question, as_of=item.asked_on)
        ranked: tuple[str, ...] = ()
        if item.evidence:
            hits = engine.search(item.question, k=passages_for_ranking, as_of=item.asked_on)
            ranked = tuple(document_ranking(hit.doc_id for hit in hits))
        results.append(
            QuestionResult(
                id=item.id,
                question=item.question,
                ranked_docs=ranked,
                evidence=item.evidence,
                answerable=item.answerable,
                answered=answer.answered,
                answer=answer.text,
                right=contains_expected(answer.text, item.expected) if item.expected else None,
                verbatim=quotes_verbatim(answer.citations, engine.article_text),
                timings_ms=dict(answer.timings_ms),
                mode=answer.mode,
                written_kept=answer.written.kept if answer.written else 0,
                written_dropped=answer.written.dropped if answer.written else 0,
            )
        )
        if progress:
            progress(number, len(questions))
    return results


def result_to_json(result: QuestionResult) -> dict:
    data = asdict(result)
    data["ranked_docs"] = list(result.ranked_docs[:10])
    data["evidence"] = list(result.evidence)
    return data


WARM_UP_QUESTIONS = ("What happened?", "ماذا حدث؟")


def warm_up(engine, questions: Sequence[str] = WARM_UP_QUESTIONS) -> float:
    """Untimed questions (English and Arabic, so every model runs once) so that lazy initialisation
    is not counted as a user's wait: the figures are for a bot that has its models loaded."""
    started = time.perf_counter()
    for question in questions:
        engine.ask(question)
    return (time.perf_counter() - started) * 1000
