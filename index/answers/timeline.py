"""A timeline: the dated events about a topic, in date order, each a quoted sentence with its citation.

An event's date is the day its sentence names ("last Thursday", "on 9 March"), read against its
article's date, else the article's date. Undated sentences of undated articles cannot be placed and
are left out.
"""

from __future__ import annotations

from dataclasses import dataclass

from index.answers.compose import Citation, cite_sentence
from index.answers.features import FEATURES, Sources, candidates
from index.retrieval.search import Retrieval
from index.retrieval.time_words import SentenceDate, sentence_date

_SEMANTIC, _LEXICAL = FEATURES.index("semantic"), FEATURES.index("lexical")
MIN_SEMANTIC = 0.3  # a sentence sharing no word with the topic must at least be this close in meaning
PER_ARTICLE = 3  # events taken from one article at most, so one long report does not fill the timeline


@dataclass(frozen=True)
class TimelineEvent:
    date: str  # ISO day
    quote: str  # verbatim, as in the citation
    citation: Citation
    dated_by: str  # "sentence": the sentence names the day; "article": its article's date

    def to_json(self) -> dict:
        return {"date": self.date, "quote": self.quote, "citation": self.citation.to_json(),
                "dated_by": self.dated_by}


def build_timeline(retrieval: Retrieval, sources: Sources, limit: int) -> list[TimelineEvent]:
    """The most relevant dated sentences of the retrieved passages, at most `limit`, oldest first."""
    found = candidates(retrieval.question, retrieval, sources, len(retrieval.hits))
    scored: list[tuple[float, SentenceDate, int]] = []
    for number, candidate in enumerate(found):
        semantic, lexical = float(candidate.features[_SEMANTIC]), float(candidate.features[_LEXICAL])
        if lexical <= 0 and semantic < MIN_SEMANTIC:
            continue
        when = sentence_date(candidate.text, candidate.hit.published)
        if when.day is None or when.earlier:  # relayed earlier figures have no day of their own
            continue
        # A sentence that names its own day is an event; the others are reports of the article's day.
        scored.append((semantic + lexical + (0.2 if when.named else 0.0), when, number))
    scored.sort(key=lambda item: -item[0])
    taken: list[tuple[SentenceDate, int]] = []
    per_article: dict[str, int] = {}
    quoted: set[str] = set()
    for _score, when, number in scored:
        candidate = found[number]
        key = " ".join(candidate.text.lower().split())
        if key in quoted or per_article.get(candidate.hit.doc_id, 0) >= PER_ARTICLE:
            continue
        quoted.add(key)
        per_article[candidate.hit.doc_id] = per_article.get(candidate.hit.doc_id, 0) + 1
        taken.append((when, number))
        if len(taken) == limit:
            break
    taken.sort(key=lambda item: (item[0].day, found[item[1]].hit.published or "", found[item[1]].start))
    events = []
    for n, (when, number) in enumerate(taken, start=1):
        citation = cite_sentence(n, found[number])
        events.append(TimelineEvent(str(when.day), citation.quote, citation,
                                    "sentence" if when.named else "article"))
    return events
