"""Checking a claim against the sources: which sentences support it, which contradict it, or neither.

A claim is retrieved like a question (Engine.retrieve_for_answer), and every sentence of the best
passages is a candidate, with the features answering computes (index/answers/features.py: meaning
from the stored sentence vectors, word overlap, names the article never mentions, negation). The
claim and each sentence are read alike (index/retrieval/statement.py: figures and what they count,
negation, direction) and compared:

- a sentence about the claim (relevant enough) that gives another figure for the same thing, is
  negated where the claim is not (or the other way round), or says the opposite direction
  (increase / decrease) contradicts it;
- a sentence about the claim that agrees on its figures, or is close enough in meaning and
  words with no mismatch, supports it;
- anything else says neither.

A figure the news changed over time (12, then 27, then 41 dead) is no contradiction between its
reports: a sentence whose only mismatch is another figure, reported before a sentence that gives the
claim's figure, is an "earlier report"; one reported after every such sentence is a "later report",
and a claim whose figure later reports updated is "outdated". Reports are dated as figures are
(index/answers/figures.py: the day a sentence names, else its article's date).

The thresholds are not guessed: `verbatim eval-claims --tune` searches them on SciFact's tuning part
(index/claim_evaluation.py), and docs/quality.md ("Checking claims") reports the other part.
Quotes are whole source sentences, verbatim, each cited.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from index.answers.compose import AnswerPolicy, Citation, cite_sentence, score_candidates
from index.answers.features import FEATURES, Candidate, Sources, source_language, weighted_coverage
from index.retrieval.question import ParsedQuestion
from index.retrieval.search import Retrieval
from index.retrieval.statement import QUALIFIER_TERMS, Figure, Statement, read_statement
from index.retrieval.time_words import SentenceDate, sentence_date
from index.store.lexical import analyse

Stance = Literal["supports", "contradicts", "earlier report", "later report", "neither"]
Mismatch = Literal["figure", "direction", "negated_claim", "negated_source"]
Verdict = Literal["supported", "contradicted", "mixed", "outdated", "not addressed"]
FigureAgreement = Literal["match", "differ", "missing", "none"]

_SEMANTIC = FEATURES.index("semantic")
FIGURE_TOLERANCE = 0.05  # "nearly 1,000" and "more than 973" are the same figure; 50 and 973 are not


@dataclass(frozen=True)
class ClaimThresholds:
    """Where relevance (meaning_weight × similarity + the rest × word overlap) starts to count.

    Measured on SciFact's tuning part with `verbatim eval-claims --tune` (docs/quality.md)."""

    meaning_weight: float = 0.4
    addressed: float = 0.5  # below this a sentence is not about the claim
    supports: float = 0.55  # a sentence about the claim, with no mismatch, supports it from here
    # A mismatch contradicts from these relevances; below, the sentence says neither. Each cue has
    # its own: on SciFact a "not" on one side only is rarely a real contradiction.
    contradicts_figure: float = 0.5  # another figure for what the claim counts (so: from `addressed`)
    contradicts_direction: float = 0.55  # up where the claim says down, or the other way round
    contradicts_negated_claim: float = 0.75  # the claim is negated, the sentence not
    contradicts_negated_source: float = 0.725  # the sentence is negated, the claim not
    # A claim in another language than the sources has no shared words: only meaning counts, and the
    # multilingual model's similarities run lower than the English one's. Not measured: SciFact is
    # English only (docs/quality.md); 0.35 is where the seed article's Arabic claims fall.
    crosslingual_addressed: float = 0.35
    # A dated report giving the claim's figure is judged by meaning alone from here (see `Cues.relevance`).
    # Not measured either (SciFact is undated): "The death toll ... rose to 27" is 0.775 from "27 people died
    # in the Vellmoor floods" but still 0.65-0.72 from the homes flooded, the injured or the rescued.
    dated_figure_meaning: float = 0.75
    max_quotes: int = 3


DEFAULT_THRESHOLDS = ClaimThresholds()


@dataclass(frozen=True)
class Cues:
    """What a sentence says relative to the claim: the inputs of its stance."""

    similarity: float
    overlap: float
    crosslingual: bool
    figures: FigureAgreement
    differing: tuple[str, str] | None  # (the claim's figure, the source's), when they differ
    negated_claim: bool  # the claim is negated and the sentence is not
    negated_source: bool  # the sentence is negated and the claim is not
    opposite_direction: bool
    names_missing: tuple[str, ...]  # names in the claim that the sentence's article never mentions
    reported: SentenceDate | None = None  # when the sentence says it was reported (for figures that changed)

    def relevance(self, thresholds: ClaimThresholds) -> float:
        if self.crosslingual:
            return self.similarity
        w = thresholds.meaning_weight
        mixed = w * self.similarity + (1 - w) * self.overlap
        if self.figures == "match" and _dated(self.reported) and self.similarity >= thresholds.dated_figure_meaning:
            # In a dated report the claim's own figure ties a sentence to it, whatever words carry it: news
            # re-reports a toll in new words ("The death toll rose to 27" is about "27 people died" though
            # it shares no word but the place), so meaning alone may decide. Not in undated sources: in
            # SciFact's abstracts a shared number is more often chance (its tuning part: 0.480 → 0.454).
            return max(mixed, self.similarity)
        return mixed

    @property
    def mismatches(self) -> tuple[Mismatch, ...]:
        found: list[Mismatch] = []
        if self.figures == "differ":
            found.append("figure")
        if self.opposite_direction:
            found.append("direction")
        if self.negated_claim:
            found.append("negated_claim")
        if self.negated_source:
            found.append("negated_source")
        return tuple(found)


def contradiction_threshold(thresholds: ClaimThresholds, mismatch: Mismatch) -> float:
    return float(getattr(thresholds, f"contradicts_{mismatch}"))


REASONS: dict[Mismatch, str] = {
    "figure": "",  # written with the two figures
    "direction": "says it goes the other way",
    "negated_claim": "says it does (the claim says it does not)",
    "negated_source": "says it does not",
}


@dataclass(frozen=True)
class JudgedSentence:
    stance: Stance
    reason: str  # why, in words a reader can check against the quote
    relevance: float
    citation: Citation
    cues: Cues

    def to_json(self) -> dict:
        return {"stance": self.stance, "reason": self.reason, "relevance": round(self.relevance, 4),
                **self.citation.to_json()}


@dataclass(frozen=True)
class ClaimCheck:
    claim: str
    verdict: Verdict
    summary: str
    sentences: list[JudgedSentence]  # the quoted ones: supporting and contradicting, most relevant first
    language: str
    note: str | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def supporting(self) -> list[JudgedSentence]:
        return [s for s in self.sentences if s.stance == "supports"]

    @property
    def contradicting(self) -> list[JudgedSentence]:
        return [s for s in self.sentences if s.stance == "contradicts"]

    def to_json(self) -> dict:
        return {"claim": self.claim, "verdict": self.verdict, "summary": self.summary,
                "sentences": [s.to_json() for s in self.sentences], "language": self.language,
                "note": self.note, "timings_ms": self.timings_ms}


@dataclass(frozen=True)
class ClaimCandidate:
    """One source sentence with its cues, before thresholds decide its stance (kept apart so tuning
    can try many thresholds over one retrieval)."""

    candidate: Candidate
    cues: Cues


def claim_candidates(question: ParsedQuestion, claim: Statement, retrieval: Retrieval, sources: Sources,
                     policy: AnswerPolicy) -> list[ClaimCandidate]:
    # The words a claim and a sentence should share: not its figures (a differing figure is what a
    # contradiction looks like, not a sign of another topic), nor words that only qualify a figure, nor
    # words no source uses ("apparently", "reportedly"), which no sentence could share.
    topic = {t: w for t, w in question.terms.items()
             if not any(ch.isdigit() for ch in t) and t not in QUALIFIER_TERMS and sources.known(t)}
    found: list[ClaimCandidate] = []
    for scored in score_candidates(question, retrieval, sources, policy):
        candidate = scored.candidate
        sentence = read_statement(candidate.text)
        agreement, differing = compare_figures(claim.figures, sentence.figures)
        crosslingual = question.language != source_language(candidate.hit)
        found.append(ClaimCandidate(candidate, Cues(
            similarity=float(candidate.features[_SEMANTIC]),
            overlap=weighted_coverage(topic, set(analyse(candidate.text)), sources.idf),
            crosslingual=crosslingual,
            figures=agreement,
            differing=differing,
            # Negation words are read per language, so across languages they cannot be compared.
            negated_claim=not crosslingual and claim.negated and not sentence.negated,
            negated_source=not crosslingual and sentence.negated and not claim.negated,
            opposite_direction=opposite(claim, sentence),
            # A figure the article never gives is a difference to weigh, not a sign of another topic.
            names_missing=tuple(n for n in candidate.missing_names if not any(ch.isdigit() for ch in n)),
            reported=sentence_date(candidate.text, candidate.hit.published),
        )))
    return found


def opposite(claim: Statement, sentence: Statement) -> bool:
    """The claim says one way (up or down) and the sentence only the other."""
    return len(claim.directions) == 1 and len(sentence.directions) == 1 and claim.directions != sentence.directions


def compare_figures(claimed: tuple[Figure, ...], given: tuple[Figure, ...]) -> tuple[FigureAgreement,
                                                                                     tuple[str, str] | None]:
    """Whether the sentence gives the claim's figures ("match"), another figure for the same thing
    ("differ": same kind, and next to the same words), not the claim's count or share ("missing"), or
    the claim gives none ("none")."""
    matched = unmatched = False
    for figure in claimed:
        same_thing = [g for g in given if g.kind == figure.kind and _about_the_same(figure, g)]
        if any(_same_value(figure.value, g.value) for g in same_thing):
            matched = True
            continue
        # An uncommon figure given exactly is the claim's figure, even in another language's words.
        if figure.value >= 10 and any(g.kind == figure.kind and g.value == figure.value for g in given):
            matched = True
            continue
        if same_thing:
            return "differ", (figure.written, same_thing[0].written)
        unmatched = unmatched or figure.kind != "year"
    # A sentence that does not give the claim's count cannot confirm it, however close in words.
    return ("missing" if unmatched else "match" if matched else "none"), None


def _about_the_same(a: Figure, b: Figure) -> bool:
    return a.kind == "year" or bool(a.counts & b.counts)


def _same_value(a: float, b: float) -> bool:
    return abs(a - b) <= FIGURE_TOLERANCE * max(abs(a), abs(b))


def stance(cues: Cues, thresholds: ClaimThresholds) -> tuple[Stance, str]:
    relevance = cues.relevance(thresholds)
    addressed = thresholds.crosslingual_addressed if cues.crosslingual else thresholds.addressed
    if cues.names_missing:
        return "neither", f"its article never mentions {', '.join(cues.names_missing)}"
    if relevance < addressed:
        return "neither", "not about the claim"
    mismatches = cues.mismatches
    for mismatch in mismatches:
        if relevance >= contradiction_threshold(thresholds, mismatch):
            if mismatch == "figure" and cues.differing:
                return "contradicts", f"gives {cues.differing[1]} where the claim says {cues.differing[0]}"
            return "contradicts", REASONS[mismatch]
    if mismatches:
        return "neither", "close, but does not say the same"
    if cues.figures == "match":
        return "supports", "gives the same figure"
    if cues.figures == "missing":
        return "neither", "does not give the claim's figure"
    supports = thresholds.crosslingual_addressed if cues.crosslingual else thresholds.supports
    if relevance >= supports:
        return "supports", "says the same"
    return "neither", "about the claim, but does not say it"


def judge(claim: str, language: str, found: list[ClaimCandidate], thresholds: ClaimThresholds) -> ClaimCheck:
    """The verdict weighs every candidate sentence; the most relevant few are quoted (when the sources
    disagree, or later reports update the claim's figure, at least one of each side)."""
    stanced: list[tuple[Stance, str, ClaimCandidate]] = []
    seen: set[str] = set()
    for entry in sorted(found, key=lambda c: -c.cues.relevance(thresholds)):
        position, reason = stance(entry.cues, thresholds)
        text = entry.candidate.text.strip().lower()
        if position != "neither" and text not in seen:
            seen.add(text)
            stanced.append((position, reason, entry))
    stanced = as_reports(stanced)
    verdict = overall({position for position, _, _ in stanced})
    quoted = stanced[:thresholds.max_quotes]
    for needed in SIDES.get(verdict, ()):
        if needed not in {position for position, _, _ in quoted}:
            best = next(s for s in stanced if s[0] == needed)
            keep = [q for q in quoted if q[0] in SIDES[verdict]]  # make room from what the verdict needs least
            quoted = (keep + [q for q in quoted if q not in keep])[:thresholds.max_quotes - 1] + [best]
    judged = [JudgedSentence(position, reason, entry.cues.relevance(thresholds),
                             cite_sentence(n, entry.candidate), entry.cues)
              for n, (position, reason, entry) in enumerate(quoted, start=1)]
    note = None
    if found and found[0].cues.crosslingual:
        note = "Your claim is not in the sources' language; these are quotations from the sources as written."
    return ClaimCheck(claim, verdict, SUMMARIES[verdict], judged, language, note)


# The stances a verdict is made of: its quotes include at least one of each.
SIDES: dict[Verdict, tuple[Stance, ...]] = {"mixed": ("supports", "contradicts"),
                                            "outdated": ("supports", "later report")}


def as_reports(stanced: list[tuple[Stance, str, ClaimCandidate]]) -> list[tuple[Stance, str, ClaimCandidate]]:
    """A contradiction by another figure alone, from a dated report before the newest sentence that gives
    the claim's figure, is an earlier report of it; after every such sentence, a later report."""
    matching = [entry.cues.reported for position, _, entry in stanced
                if position == "supports" and entry.cues.figures == "match" and _dated(entry.cues.reported)]
    if not matching:
        return stanced
    newest = max(when.sort_key() for when in matching if when is not None)
    relabelled: list[tuple[Stance, str, ClaimCandidate]] = []
    for position, reason, entry in stanced:
        when, cues = entry.cues.reported, entry.cues
        if position == "contradicts" and cues.mismatches == ("figure",) and cues.differing and when and _dated(when):
            claimed, given = cues.differing
            if when.sort_key() < newest:
                position, reason = "earlier report", f"an earlier report ({when.label()}): {given}, since updated"
            elif when.sort_key() > newest:
                position, reason = "later report", f"a later report ({when.label()}): {given}, the claim {claimed}"
        relabelled.append((position, reason, entry))
    return relabelled


def _dated(when: SentenceDate | None) -> bool:
    return when is not None and when.day is not None


def overall(stances: set[Stance]) -> Verdict:
    stances = stances - {"earlier report"}  # an earlier report the claim's figure updated says nothing against it
    if "later report" in stances:
        return "mixed" if "contradicts" in stances else "outdated"
    if stances == {"supports"}:
        return "supported"
    if stances == {"contradicts"}:
        return "contradicted"
    if stances:
        return "mixed"
    return "not addressed"


SUMMARIES: dict[Verdict, str] = {
    "supported": "The sources support this claim.",
    "contradicted": "The sources contradict this claim.",
    "mixed": "The sources both support and contradict parts of this claim.",
    "outdated": "The sources reported this, but later reports give another figure.",
    "not addressed": "The sources I have don't address this claim.",
}

