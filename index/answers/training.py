"""Fitting the answer scorer: `verbatim train-answerer`.

Every question of the training sets is asked of an index of its own corpus; each candidate sentence
(index/answers/features.py) is labelled by whether it holds one of the question's expected answers
(never, for a question the text does not answer, or one asked of an unrelated corpus). A logistic
regression is fitted on the training split, and the decline threshold and the share of the best
probability that further sentences need are chosen on the development split, where the figures
printed come from. Splits are fixed by a hash of the question's id, so they never move between runs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from index.answers.compose import AnswerPolicy, choose_sentences, named_nowhere
from index.answers.features import FEATURES, candidates
from index.answers.scorer import AnswerScorer
from index.evaluation import EvalQuestion, as_off_topic, contains_expected, load_questions

DEV_SHARE = 0.3  # of each set's questions, by a hash of their id
THRESHOLDS = tuple(round(t, 3) for t in np.arange(0.05, 0.951, 0.025))
KEEP_RATIOS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.75, 0.9, 1.0)


@dataclass(frozen=True)
class TrainingSet:
    name: str
    corpus: Path
    questions: tuple[Path, ...]
    off_topic: bool = False  # the questions are asked of a corpus they are not about: all declined
    fit: bool = True  # False: only ever scored, never fitted on (a held-out set)


@dataclass
class QuestionRows:
    """One question's candidates as the scorer sees them."""

    set_name: str
    question: EvalQuestion
    features: np.ndarray  # (candidates, features)
    labels: np.ndarray  # 1 where the sentence holds an expected answer
    texts: list[str]
    unmentioned: bool  # the question names something no retrieved source mentions

    @property
    def dev(self) -> bool:
        return is_dev(self.question.id)


def is_dev(question_id: str) -> bool:
    digest = hashlib.sha256(question_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < DEV_SHARE


def default_sets(data: Path, repo_data: Path) -> list[TrainingSet]:
    """The sets of `../shared/data` and the repo's own seed questions (see docs/quality.md)."""
    seed_corpus = repo_data / "syria-vows-accountability.md"
    return [
        TrainingSet("squad2-sample", data / "squad2-sample" / "corpus.jsonl",
                    (data / "squad2-sample" / "queries.jsonl",)),
        TrainingSet("arcd-train", data / "arcd" / "train-corpus.jsonl", (data / "arcd" / "train-queries.jsonl",)),
        TrainingSet("seed", seed_corpus, (data / "seed-dev" / "queries.jsonl",
                                          repo_data / "seed-heldout-queries.jsonl",
                                          repo_data / "seed-train-queries.jsonl")),
        # Questions about other things, asked of the seed article: they must all be declined.
        TrainingSet("off-topic", seed_corpus, (data / "squad2-sample" / "queries.jsonl",
                                               data / "arcd" / "train-queries.jsonl"), off_topic=True),
    ]


def question_rows(engine, training_set: TrainingSet, questions: Sequence[EvalQuestion]) -> list[QuestionRows]:
    rows: list[QuestionRows] = []
    policy = engine.policy
    for item in questions:
        parsed, retrieval = engine.retrieve_for_answer(item.question)
        found = candidates(parsed, retrieval, engine.facts, policy.candidate_passages)
        if not found:
            continue
        labels = np.asarray([1 if item.answerable and contains_expected(c.text, item.expected) else 0 for c in found])
        unmentioned = bool(named_nowhere(parsed, found))
        rows.append(QuestionRows(training_set.name, item, np.stack([c.features for c in found]), labels,
                                 [c.text for c in found], unmentioned))
    return rows


def collecting_policy(settings) -> AnswerPolicy:
    """The answer policy training opens its engines with: collecting candidates needs only how many
    passages answers read, never the scorer being replaced (which may no longer fit the features)."""
    zeros = np.zeros(len(FEATURES))
    neutral = AnswerScorer(FEATURES, zeros, np.ones(len(FEATURES)), zeros, 0.0, threshold=0.5, keep_ratio=1.0)
    return AnswerPolicy(scorer=neutral, max_sentences=settings.answer_max_sentences,
                        candidate_passages=settings.answer_candidate_passages)


@dataclass
class Outcome:
    answerable: int = 0
    right: int = 0
    unanswerable: int = 0
    declined: int = 0
    answered: int = 0
    answered_right: int = 0
    sentences: int = 0

    def figures(self) -> dict[str, float | int | None]:
        return {
            "answerable": self.answerable,
            "answerable_right": round(self.right / self.answerable, 3) if self.answerable else None,
            "unanswerable": self.unanswerable,
            "unanswerable_declined": round(self.declined / self.unanswerable, 3) if self.unanswerable else None,
            "precision": round(self.answered_right / self.answered, 3) if self.answered else None,
            "sentences_per_answer": round(self.sentences / self.answered, 2) if self.answered else None,
        }


def simulate(scorer: AnswerScorer, rows: Sequence[QuestionRows], max_sentences: int) -> dict[str, Outcome]:
    """What the answer step would do for each question, per set (index/answers/compose.py's rule)."""
    outcomes: dict[str, Outcome] = {}
    for row in rows:
        outcome = outcomes.setdefault(row.set_name, Outcome())
        probabilities = scorer.probabilities(row.features)
        order = np.argsort(-probabilities, kind="stable")
        chosen = [] if row.unmentioned else choose_sentences(
            [(row.texts[i], float(probabilities[i])) for i in order], scorer, max_sentences)
        answered = bool(chosen)
        right = answered and contains_expected(" ".join(row.texts[order[i]] for i in chosen), row.question.expected)
        if row.question.answerable:
            outcome.answerable += 1
            outcome.right += int(right)
        else:
            outcome.unanswerable += 1
            outcome.declined += int(not answered)
        if answered:
            outcome.answered += 1
            outcome.answered_right += int(bool(right) and bool(row.question.answerable))
            outcome.sentences += len(chosen)
    return outcomes


def objective(outcomes: dict[str, Outcome]) -> float:
    """The mean of every set's rates: answerable questions answered right, unanswerable ones declined."""
    rates = []
    for outcome in outcomes.values():
        if outcome.answerable:
            rates.append(outcome.right / outcome.answerable)
        if outcome.unanswerable:
            rates.append(outcome.declined / outcome.unanswerable)
    return float(np.mean(rates)) if rates else 0.0


@dataclass
class TrainingReport:
    scorer: AnswerScorer
    train_questions: dict[str, int] = field(default_factory=dict)
    dev_questions: dict[str, int] = field(default_factory=dict)
    dev: dict[str, dict] = field(default_factory=dict)
    train: dict[str, dict] = field(default_factory=dict)


def fit(rows: Sequence[QuestionRows], max_sentences: int, regularisation: float = 1.0) -> TrainingReport:
    from sklearn.linear_model import LogisticRegression

    train = [r for r in rows if not r.dev]
    dev = [r for r in rows if r.dev]
    x = np.concatenate([r.features for r in train]).astype(np.float64)
    y = np.concatenate([r.labels for r in train])
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    model = LogisticRegression(C=regularisation, max_iter=2000)
    model.fit((x - mean) / scale, y)
    scorer = AnswerScorer(FEATURES, mean, scale, model.coef_[0].astype(np.float64), float(model.intercept_[0]),
                          threshold=0.5, keep_ratio=1.0)
    best: tuple[float, float, float, float] | None = None  # (objective, -sentences, threshold, keep)
    for threshold in THRESHOLDS:
        for keep in KEEP_RATIOS:
            candidate = replace(scorer, threshold=threshold, keep_ratio=keep)
            outcomes = simulate(candidate, dev, max_sentences)
            sentences = sum(o.sentences for o in outcomes.values()) / max(1, sum(o.answered for o in outcomes.values()))
            key = (round(objective(outcomes), 4), -round(sentences, 2), threshold, keep)
            if best is None or key > best:
                best = key
    assert best is not None  # noqa: S101 - for the type checker: THRESHOLDS and KEEP_RATIOS are not empty
    scorer = replace(scorer, threshold=best[2], keep_ratio=best[3])
    report = TrainingReport(scorer)
    for name, outcome in sorted(simulate(scorer, dev, max_sentences).items()):
        report.dev[name] = outcome.figures()
    for name, outcome in sorted(simulate(scorer, train, max_sentences).items()):
        report.train[name] = outcome.figures()
    for r in train:
        report.train_questions[r.set_name] = report.train_questions.get(r.set_name, 0) + 1
    for r in dev:
        report.dev_questions[r.set_name] = report.dev_questions.get(r.set_name, 0) + 1
    scorer = replace(scorer, about={
        "model": f"logistic regression (C={regularisation}) over standardised features",
        "dev_share": DEV_SHARE,
        "train_questions": report.train_questions,
        "dev_questions": report.dev_questions,
        "dev_figures": report.dev,
        "objective_on_dev": best[0],
    })
    report.scorer = scorer
    return report


def collect(sets: Sequence[TrainingSet], open_engine: Callable[[TrainingSet], object], limit_off_topic: int = 300,
            progress: Callable[[str], None] | None = None) -> list[QuestionRows]:
    """Every set's questions asked of an engine over its corpus, as rows for fitting."""
    rows: list[QuestionRows] = []
    for training_set in sets:
        engine = open_engine(training_set)
        questions: list[EvalQuestion] = []
        for path in training_set.questions:
            if path.is_file():
                questions += load_questions(path)
        if training_set.off_topic:
            # A fixed, spread sample of other sets' questions, all to be declined.
            questions = [replace(as_off_topic(q), id=f"off-topic:{q.id}") for q in questions]
            # (hashed apart from the split's hash, so the sample falls in both splits)
            questions = sorted(questions, key=lambda q: hashlib.sha256(f"sample {q.id}".encode()).hexdigest())
            questions = questions[:limit_off_topic]
        found = question_rows(engine, training_set, questions)
        if progress:
            progress(f"{training_set.name}: {len(found)} questions, "
                     f"{sum(len(r.labels) for r in found)} candidate sentences")
        rows += found
    return rows


def report_json(report: TrainingReport) -> str:
    return json.dumps({"dev": report.dev, "train": report.train, "threshold": report.scorer.threshold,
                       "keep_ratio": report.scorer.keep_ratio}, indent=1)
