"""Measuring claim checking on labelled claims (SciFact): accuracy per label, on a part never tuned on.

A claim line is `{"id", "question": the claim, "evidence": [doc ids], "labels": {doc id: "SUPPORT" |
"CONTRADICT"}}`. A claim labelled SUPPORT should come out "supported", CONTRADICT "contradicted";
one whose cited abstracts carry no label (SciFact's "not enough info") should come out "not addressed".

Retrieval and the cues of every candidate sentence are collected once per claim (`collect`); the
verdicts for given thresholds are then the real `judge` over them (`verdicts`), so the figures are
those of `Engine.check`. `tune` searches the thresholds on one part (the answer scorer's `train`
questions by id hash, index/answers/training.py); the report gives the other part and the whole.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from index.answers.claims import ClaimCandidate, ClaimThresholds, Mismatch, Verdict, judge
from index.answers.training import is_dev
from index.errors import VerbatimError
from index.evaluation import jsonl_records

if TYPE_CHECKING:
    from index.engine import Engine

EXPECTED: dict[str, Verdict] = {"SUPPORT": "supported", "CONTRADICT": "contradicted", "NONE": "not addressed"}
LABELS = tuple(EXPECTED)


@dataclass(frozen=True)
class LabelledClaim:
    id: str
    claim: str
    label: str  # SUPPORT, CONTRADICT, or NONE (the cited abstracts neither support nor contradict it)
    evidence: tuple[str, ...]


@dataclass(frozen=True)
class CollectedClaim:
    claim: LabelledClaim
    language: str
    candidates: list[ClaimCandidate]


def load_claims(path: Path) -> list[LabelledClaim]:
    claims: list[LabelledClaim] = []
    for where, record in jsonl_records(path, "claims"):
        labels = record.get("labels")
        claim = record.get("question")
        if not isinstance(claim, str) or not claim.strip() or not isinstance(labels, dict):
            raise VerbatimError(f"{where}: a claim line needs `question` (the claim) and `labels` "
                                "(an object of doc id → SUPPORT or CONTRADICT, empty when neither)")
        values = set(labels.values())
        if not values <= {"SUPPORT", "CONTRADICT"} or len(values) > 1:
            raise VerbatimError(f"{where}: `labels` must all be SUPPORT or all CONTRADICT")
        claims.append(LabelledClaim(str(record.get("id") or where.rsplit(":", 1)[1]), claim,
                                    values.pop() if values else "NONE",
                                    tuple(str(e) for e in record.get("evidence") or ())))
    return claims


def collect(engine: Engine, claims: Sequence[LabelledClaim],
            progress: Callable[[int, int], None] | None = None) -> list[CollectedClaim]:
    collected: list[CollectedClaim] = []
    for number, item in enumerate(claims, start=1):
        parsed, found = engine.claim_candidates(item.claim)
        collected.append(CollectedClaim(item, parsed.language, found))
        if progress:
            progress(number, len(claims))
    return collected


def verdicts(collected: Sequence[CollectedClaim], thresholds: ClaimThresholds) -> list[tuple[Verdict, bool]]:
    """Each claim's verdict, and whether a sentence of its cited evidence was quoted for it."""
    out: list[tuple[Verdict, bool]] = []
    for item in collected:
        checked = judge(item.claim.claim, item.language, item.candidates, thresholds)
        out.append((checked.verdict, any(s.citation.doc_id in item.claim.evidence for s in checked.sentences)))
    return out


def summarise(collected: Sequence[CollectedClaim], thresholds: ClaimThresholds) -> dict:
    """Per label: how many, the share with the expected verdict (and, for SUPPORT and CONTRADICT, with
    a quote from the cited evidence), and how the verdicts spread."""
    results = verdicts(collected, thresholds)
    figures: dict[str, dict] = {}
    for label in LABELS:
        rows = [(v, cited) for item, (v, cited) in zip(collected, results, strict=True) if item.claim.label == label]
        if not rows:
            continue
        expected = EXPECTED[label]
        entry: dict = {"claims": len(rows), "accuracy": _share(v == expected for v, _ in rows)}
        if label != "NONE":
            entry["accuracy_quoting_evidence"] = _share(v == expected and cited for v, cited in rows)
        entry["verdicts"] = {name: sum(1 for v, _ in rows if v == name)
                             for name in ("supported", "contradicted", "mixed", "not addressed")}
        figures[label] = entry
    return {"claims": len(collected), "balanced_accuracy": balanced_accuracy(collected, results),
            "labels": figures}


def balanced_accuracy(collected: Sequence[CollectedClaim], results: Sequence[tuple[Verdict, bool]]) -> float:
    """The mean of the labels' accuracies, so the rarer contradictions count as much as the rest."""
    shares = []
    for label in LABELS:
        rows = [v for item, (v, _) in zip(collected, results, strict=True) if item.claim.label == label]
        if rows:
            shares.append(sum(1 for v in rows if v == EXPECTED[label]) / len(rows))
    return round(float(np.mean(shares)), 4) if shares else 0.0


def split(collected: Sequence[CollectedClaim], part: str) -> list[CollectedClaim]:
    """`tune` (fitting part), `report` (never tuned on) or `all`; fixed by a hash of the claim id."""
    if part == "all":
        return list(collected)
    return [c for c in collected if is_dev(c.claim.id) == (part == "report")]


# The grid the thresholds are searched on (relevance values run from about 0.2 to 1).
WEIGHTS = (0.4, 0.5, 0.6, 0.7, 0.8, 1.0)
LEVELS = tuple(round(x, 3) for x in np.arange(0.30, 0.951, 0.025))


def tune(collected: Sequence[CollectedClaim], base: ClaimThresholds) -> tuple[ClaimThresholds, float]:
    """The thresholds with the best balanced accuracy on `collected`: for each weight, a full search of
    `addressed`, `supports` and one contradiction threshold for every cue, then each cue's own threshold
    in turn (two rounds). A fast equivalent of `judge`'s verdict drives the search; the winner is
    re-scored with `judge` itself. Ties go to the first found (lower weights and thresholds)."""
    labels = np.array([LABELS.index(c.claim.label) for c in collected])
    best: tuple[float, ClaimThresholds] = (-1.0, base)
    levels = np.array(LEVELS)
    for weight in WEIGHTS:
        trial = replace(base, meaning_weight=weight)
        relevance = _best_relevances(collected, trial)

        found: tuple[float, float, float, dict[Mismatch, float]] = (-1.0, 0.0, 0.0, {k: 1.0 for k in MISMATCHES})
        for addressed, supports, contradicts in itertools.product(levels, levels, levels):
            if supports < addressed or contradicts < addressed:
                continue
            everywhere: dict[Mismatch, float] = {kind: float(contradicts) for kind in MISMATCHES}
            value = _score(relevance, labels, float(addressed), float(supports), everywhere)
            if value > found[0] + 1e-12:
                found = (value, float(addressed), float(supports), everywhere)
        value, addressed, supports, contradicts = found
        for _ in range(2):
            for kind in MISMATCHES:
                for level in (*levels, 2.0):  # 2.0: this cue never contradicts
                    trial_contradicts: dict[Mismatch, float] = {**contradicts, kind: float(level)}
                    trial_value = _score(relevance, labels, addressed, supports, trial_contradicts)
                    if trial_value > value + 1e-12:
                        value, contradicts = trial_value, trial_contradicts
        if value > best[0] + 1e-12:
            best = (value, replace(trial, addressed=addressed, supports=supports,
                                   contradicts_figure=contradicts["figure"],
                                   contradicts_direction=contradicts["direction"],
                                   contradicts_negated_claim=contradicts["negated_claim"],
                                   contradicts_negated_source=contradicts["negated_source"]))
    thresholds = best[1]
    return thresholds, balanced_accuracy(collected, verdicts(collected, thresholds))


MISMATCHES: tuple[Mismatch, ...] = ("figure", "direction", "negated_claim", "negated_source")


def _score(relevance: dict[str, np.ndarray], labels: np.ndarray, addressed: float, supports: float,
           contradicts: dict[Mismatch, float]) -> float:
    """Balanced accuracy of the verdicts `judge` would give with these thresholds (from the claims'
    best relevances per kind of sentence, see `_best_relevances`)."""
    contradicted = np.zeros(len(labels), dtype=bool)
    for kind, threshold in contradicts.items():
        contradicted |= relevance[kind] >= max(threshold, addressed)
    supported = (relevance["agreeing"] >= addressed) | (relevance["plain"] >= supports)
    predicted = np.where(contradicted & supported, 3, np.where(contradicted, 1, np.where(supported, 0, 2)))
    return float(np.mean([np.mean(predicted[labels == n] == n) for n in range(3) if np.any(labels == n)]))


def _best_relevances(collected: Sequence[CollectedClaim], thresholds: ClaimThresholds) -> dict[str, np.ndarray]:
    """Per claim, the relevance of its most relevant sentence of each kind the verdict depends on:
    with each mismatch, agreeing on a figure, and plain (neither)."""
    best = {kind: np.full(len(collected), -np.inf) for kind in (*MISMATCHES, "agreeing", "plain")}
    for i, item in enumerate(collected):
        for entry in item.candidates:
            cues = entry.cues
            if cues.names_missing or cues.crosslingual:
                continue
            relevance = cues.relevance(thresholds)
            if not cues.mismatches and cues.figures == "missing":
                continue  # says neither, whatever the thresholds
            kinds = cues.mismatches or (("agreeing",) if cues.figures == "match" else ("plain",))
            for kind in kinds:
                best[kind][i] = max(best[kind][i], relevance)
    return best


def thresholds_json(thresholds: ClaimThresholds) -> dict:
    return asdict(thresholds)


def _share(values) -> float | None:
    values = list(values)
    return round(sum(1 for v in values if v) / len(values), 4) if values else None
