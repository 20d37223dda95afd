"""Narrowing or favouring retrieved passages by their article's publication date (a question's `TimeFrame`)."""

from __future__ import annotations

import numpy as np

from index.retrieval.time_words import TimeFrame

Ranking = list[tuple[int, float]]  # (passage row, score), best first (as in index/retrieval/search.py)


# A range keeping at most this many passages is searched alone (a small filter is cheap for FAISS and
# Postgres alike); a wider one keeps enough of the unfiltered candidates for `by_time` to find them.
SEARCH_WITHIN_RANGE_ROWS = 50_000


def rows_in_time(frame: TimeFrame | None, row_days: np.ndarray,
                 rows: tuple[int, int] | np.ndarray | None) -> tuple[int, int] | np.ndarray | None:
    """The rows to search for a question with a narrow time range: only the passages of articles dated in
    it (within `rows`, a document's range or a list, when given), so a day's few articles are found in a
    corpus of many days; filtering the candidates after ranking (`by_time`) would miss those ranked below
    the candidate pool. `rows` is returned unchanged when the question has no range, when nothing is dated
    in it (then `by_time` falls back and says so), or when the range is wide."""
    if frame is None or not frame.ranged or len(row_days) == 0:
        return rows
    low = frame.start.toordinal() if frame.start else 1
    high = frame.end.toordinal() if frame.end else 10**9
    if frame.known_until is not None:
        high = min(high, frame.known_until.toordinal())
    if isinstance(rows, tuple):
        candidates = np.arange(rows[0], rows[1], dtype=np.int64)
    elif rows is not None:
        candidates = np.asarray(rows, dtype=np.int64)
    else:
        candidates = None
    days = row_days if candidates is None else row_days[candidates]
    inside = np.flatnonzero((days >= low) & (days <= high))
    if len(inside) == 0 or len(inside) > SEARCH_WITHIN_RANGE_ROWS or len(inside) == len(days):
        return rows
    return inside if candidates is None else candidates[inside]


def by_time(fused: Ranking, frame: TimeFrame | None, row_days: np.ndarray,
            recency_weight: float) -> tuple[Ranking, str | None]:
    """Drop every passage whose article was published after the asking day (`known_until`, from
    `--as-of`: a hard limit, never relaxed); keep the passages whose article is dated within the time
    words' range (when none is, keep them all and say so); then, when the question wants the newest
    reports, lift the newer ones.

    `row_days[row]` is the passage's article's date as a day ordinal, 0 when undated. An undated article
    is kept by the asking day (it is not known to be later) but not by a range (it is not known to be
    in it) unless nothing dated is: "yesterday" wants what is known to be from yesterday."""
    if frame is None or not fused:
        return fused, None
    note = None
    if frame.known_until is not None:
        last = frame.known_until.toordinal()
        fused = [(row, score) for row, score in fused if row_days[row] <= last]
        if not fused:
            return fused, f"No source had been published by {frame.known_until}."
    if frame.ranged:
        low = frame.start.toordinal() if frame.start else 1
        high = frame.end.toordinal() if frame.end else 10**9
        kept = [(row, score) for row, score in fused if low <= row_days[row] <= high]
        if kept:
            fused = kept
        else:
            note = (f"No source was published {frame.describe()}; these quotes are from the closest "
                    "sources of other dates" + (f" up to {frame.known_until}." if frame.known_until else "."))
    if frame.newest and recency_weight > 0:
        fused = favour_recent(fused, row_days, recency_weight)
    return fused, note


def favour_recent(fused: Ranking, row_days: np.ndarray, weight: float) -> Ranking:
    """Re-score by relevance (min-max over the list) plus `weight` times how new the article is among the
    listed dated ones (0 oldest or undated, 1 newest). Order within equal scores is kept."""
    days = [int(row_days[row]) for row, _ in fused]
    dated = [d for d in days if d > 0]
    if len(set(dated)) < 2:
        return fused
    oldest, newest = min(dated), max(dated)
    scores = [score for _, score in fused]
    low, high = min(scores), max(scores)
    span = high - low or 1.0
    rescored = [
        (row, (score - low) / span + weight * ((day - oldest) / (newest - oldest) if day > 0 else 0.0))
        for (row, score), day in zip(fused, days, strict=True)
    ]
    return sorted(rescored, key=lambda item: -item[1])
