"""Readers' votes on answers: every answer the bot posts is recorded under an id its buttons carry, and
each reader may rate it 👍 or 👎 (with an optional reason), once, changeably.

Kept in the data folder's database (index/state.py), so votes outlive index versions and restarts. A
voter is stored only as a salted SHA-256 of their user id: one vote per person can be enforced and
counted without keeping who voted. The salt is made once per data folder and stays in it.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from index.errors import VerbatimError
from index.state import transaction

Vote = Literal["up", "down"]
VOTES: tuple[Vote, ...] = ("up", "down")

# Discord lets a reason field hold this much; longer text is cut, never refused.
REASON_MAX_CHARS = 300

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback_salt (
    only_row INTEGER PRIMARY KEY CHECK (only_row = 1),
    salt TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS feedback_answers (
    answer_id TEXT PRIMARY KEY,
    question TEXT NOT NULL,
    answer_text TEXT NOT NULL,
    citations TEXT NOT NULL,            -- JSON list of the cited sources, quotes included
    guild_id INTEGER,                   -- NULL: a direct message or the terminal
    channel_id INTEGER,
    created_at TEXT NOT NULL            -- ISO 8601, UTC
);
CREATE INDEX IF NOT EXISTS feedback_answers_created ON feedback_answers (created_at);
CREATE TABLE IF NOT EXISTS feedback_votes (
    answer_id TEXT NOT NULL REFERENCES feedback_answers (answer_id) ON DELETE CASCADE,
    user_hash TEXT NOT NULL,
    vote TEXT NOT NULL CHECK (vote IN ('up', 'down')),
    reason TEXT,
    voted_at TEXT NOT NULL,
    PRIMARY KEY (answer_id, user_hash)
);
CREATE INDEX IF NOT EXISTS feedback_votes_voted ON feedback_votes (voted_at);
"""


class AnswerTooOldError(VerbatimError):
    def __init__(self) -> None:
        super().__init__("This answer is too old to rate, sorry. Ask the question again to rate a fresh answer.")


@dataclass(frozen=True)
class QuotedSource:
    """One citation of a recorded answer: enough to show its quote and where it comes from again."""

    n: int
    doc_id: str
    title: str
    source: str | None
    url: str | None
    published: str | None
    quote: str
    passage_id: str = ""


@dataclass(frozen=True)
class RecordedAnswer:
    answer_id: str
    question: str
    text: str
    citations: list[QuotedSource]
    guild_id: int | None
    channel_id: int | None
    created_at: str


@dataclass(frozen=True)
class VoteResult:
    vote: Vote
    previous: Vote | None  # the user's vote on this answer before, if any


@dataclass(frozen=True)
class FeedbackRow:
    """One vote with the answer it rates, as `verbatim feedback` exports it."""

    answer_id: str
    question: str
    answer: str
    citations: list[dict[str, Any]]
    guild_id: int | None
    channel_id: int | None
    user_hash: str
    vote: Vote
    reason: str | None
    voted_at: str

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class FeedbackSummary:
    up: int
    down: int
    answers_rated: int
    latest_reasons: list[tuple[str, str, str]]  # (voted_at, question, reason), newest first


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


class FeedbackStore:
    """Answers and their votes in the data folder's database. Safe to share between threads: every
    method is one short transaction on the shared connection."""

    def __init__(self, conn: sqlite3.Connection, *, retention_days: int = 90) -> None:
        self.conn = conn
        self.retention = timedelta(days=retention_days)
        self._lock = threading.Lock()
        conn.executescript(_SCHEMA)
        self._salt = self._load_salt()

    def _load_salt(self) -> str:
        # INSERT OR IGNORE: two processes opening a new database at once agree on the first salt.
        self.conn.execute("INSERT OR IGNORE INTO feedback_salt (only_row, salt) VALUES (1, ?)",
                          (secrets.token_hex(16),))
        return str(self.conn.execute("SELECT salt FROM feedback_salt").fetchone()[0])

    def _read(self, sql: str, params: Any) -> list[sqlite3.Row]:
        # Under the write lock: on a shared connection a read could otherwise see another thread's
        # transaction half done.
        with self._lock:
            return self.conn.execute(sql, params).fetchall()

    def _read_one(self, sql: str, params: Any) -> sqlite3.Row | None:
        rows = self._read(sql, params)
        return rows[0] if rows else None

    def user_hash(self, user_id: int) -> str:
        return hashlib.sha256(f"{self._salt}:{user_id}".encode()).hexdigest()

    # ------------------------------------------------------------ answers

    def record_answer(self, answer: Any, *, guild_id: int | None, channel_id: int | None,
                      now: datetime | None = None) -> str:
        """Remember a posted answer (an index.answers.compose.Answer) and return the id its buttons carry.
        Answers past the retention that nobody rated are forgotten here, so the table stays small."""
        now = now or _now()
        answer_id = secrets.token_hex(8)
        citations = [{key: getattr(c, key) for key in QuotedSource.__dataclass_fields__} for c in answer.citations]
        with transaction(self.conn, self._lock):
            self.conn.execute(
                "INSERT INTO feedback_answers VALUES (?, ?, ?, ?, ?, ?, ?)",
                (answer_id, answer.question, answer.text, json.dumps(citations, ensure_ascii=False),
                 guild_id, channel_id, _iso(now)),
            )
            self.conn.execute(
                "DELETE FROM feedback_answers WHERE created_at < ? AND answer_id NOT IN "
                "(SELECT answer_id FROM feedback_votes)",
                (_iso(now - self.retention),),
            )
        return answer_id

    def answer(self, answer_id: str, *, now: datetime | None = None) -> RecordedAnswer | None:
        """The recorded answer, or None when it is unknown or past the retention."""
        row = self._read_one("SELECT * FROM feedback_answers WHERE answer_id = ?", (answer_id,))
        if row is None or row["created_at"] < _iso((now or _now()) - self.retention):
            return None
        return RecordedAnswer(
            row["answer_id"], row["question"], row["answer_text"],
            [QuotedSource(**c) for c in json.loads(row["citations"])],
            row["guild_id"], row["channel_id"], row["created_at"],
        )

    # ------------------------------------------------------------ votes

    def vote(self, answer_id: str, user_id: int, vote: Vote, *, reason: str | None = None,
             now: datetime | None = None) -> VoteResult:
        """Record or change `user_id`'s vote on an answer. A 👍 clears an earlier 👎's reason; a 👎 keeps
        it unless a new one is given. Raises AnswerTooOldError for an unknown or expired answer."""
        if vote not in VOTES:
            raise ValueError(f"vote must be one of {VOTES}, not {vote!r}")
        now = now or _now()
        if self.answer(answer_id, now=now) is None:
            raise AnswerTooOldError()
        reason = _clean_reason(reason)
        user = self.user_hash(user_id)
        with transaction(self.conn, self._lock):
            before = self.conn.execute(
                "SELECT vote, reason FROM feedback_votes WHERE answer_id = ? AND user_hash = ?", (answer_id, user)
            ).fetchone()
            if vote == "down" and reason is None and before is not None and before["vote"] == "down":
                reason = before["reason"]
            self.conn.execute(
                "INSERT INTO feedback_votes VALUES (?, ?, ?, ?, ?) ON CONFLICT (answer_id, user_hash) "
                "DO UPDATE SET vote = excluded.vote, reason = excluded.reason, voted_at = excluded.voted_at",
                (answer_id, user, vote, reason, _iso(now)),
            )
        return VoteResult(vote, before["vote"] if before else None)

    def user_vote(self, answer_id: str, user_id: int) -> tuple[Vote, str | None] | None:
        row = self._read_one("SELECT vote, reason FROM feedback_votes WHERE answer_id = ? AND user_hash = ?",
                             (answer_id, self.user_hash(user_id)))
        return (row["vote"], row["reason"]) if row else None

    def export(self, *, since: datetime | None = None, guild_id: int | None = None) -> list[FeedbackRow]:
        """Every vote (optionally only those cast at or after `since`, or in one server), oldest first."""
        cutoff = _iso(since if since.tzinfo else since.replace(tzinfo=UTC)) if since is not None else None
        rows = self._read(
            "SELECT a.*, v.user_hash, v.vote, v.reason, v.voted_at FROM feedback_votes v "
            "JOIN feedback_answers a USING (answer_id) "
            "WHERE (:since IS NULL OR v.voted_at >= :since) AND (:guild IS NULL OR a.guild_id = :guild) "
            "ORDER BY v.voted_at, a.answer_id, v.user_hash",
            {"since": cutoff, "guild": guild_id},
        )
        return [
            FeedbackRow(r["answer_id"], r["question"], r["answer_text"], json.loads(r["citations"]), r["guild_id"],
                        r["channel_id"], r["user_hash"], r["vote"], r["reason"], r["voted_at"])
            for r in rows
        ]

    def summary(self, guild_id: int | None, *, latest: int = 5) -> FeedbackSummary:
        """Counts of 👍 and 👎 on one server's answers, and the latest 👎 reasons."""
        counts = {vote: 0 for vote in VOTES}
        for row in self._read(
            "SELECT v.vote, COUNT(*) FROM feedback_votes v JOIN feedback_answers a USING (answer_id) "
            "WHERE a.guild_id IS ? GROUP BY v.vote", (guild_id,)
        ):
            counts[row[0]] = row[1]
        rated = self._read(
            "SELECT COUNT(DISTINCT v.answer_id) FROM feedback_votes v JOIN feedback_answers a USING (answer_id) "
            "WHERE a.guild_id IS ?", (guild_id,)
        )[0][0]
        reasons = self._read(
            "SELECT v.voted_at, a.question, v.reason FROM feedback_votes v JOIN feedback_answers a USING (answer_id) "
            "WHERE a.guild_id IS ? AND v.vote = 'down' AND v.reason IS NOT NULL "
            "ORDER BY v.voted_at DESC, a.answer_id LIMIT ?", (guild_id, latest)
        )
        return FeedbackSummary(counts["up"], counts["down"], rated, [tuple(r) for r in reasons])


def _clean_reason(reason: str | None) -> str | None:
    if reason is None:
        return None
    text = " ".join(reason.split())[:REASON_MAX_CHARS]
    return text or None


def parse_since(value: str) -> datetime:
    """A `--since` value: a date (2026-11-01) or a date and time (2026-11-01T12:00), read as UTC."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise VerbatimError(f"--since must be a date like 2026-11-01 (or 2026-11-01T12:00), not {value!r}.") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def feedback_rows_json(rows: Sequence[FeedbackRow]) -> list[dict[str, Any]]:
    return [row.to_json() for row in rows]
