"""Per-server settings (Discord's `/config`): what a server changed, over the environment's defaults.

A server stores only what it changed, one row per setting, in the data folder's database; everything
else follows the environment (`.env`), so changing a default there reaches every server that kept it.
No Discord imports: nothing here needs Discord, and the terminal may read these too.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from index.errors import VerbatimError
from index.settings import Settings
from index.state import connect_state, transaction

Visibility = Literal["public", "ephemeral"]
VISIBILITIES: tuple[Visibility, ...] = ("public", "ephemeral")

# The settings a server can change; `/config set` and `/config reset` name them like this.
KEYS = ("answer_channels", "visibility", "question_budget", "sources", "announcement_channel", "forum_tag")
Key = Literal["answer_channels", "visibility", "question_budget", "sources", "announcement_channel", "forum_tag"]

MAX_CHANNELS = 25
MAX_SOURCES = 50
MAX_TAG_CHARS = 20  # Discord's limit for a forum tag's name

_SCHEMA = """
CREATE TABLE IF NOT EXISTS server_settings (
    guild_id INTEGER NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,                -- JSON
    PRIMARY KEY (guild_id, key)
);
"""


class ServerSettingError(VerbatimError):
    """A value `/config set` cannot take; the message says which values it can."""


@dataclass(frozen=True)
class QuestionBudgetSetting:
    burst: int  # questions per user per window; 0 turns the budget off
    window_seconds: float


@dataclass(frozen=True)
class ServerConfig:
    """A server's effective settings; `overridden` names those the server set itself (the rest come
    from the environment)."""

    guild_id: int
    answer_channels: tuple[int, ...]  # empty: mentions are answered in every channel
    visibility: Visibility
    question_budget: QuestionBudgetSetting
    sources: tuple[str, ...]  # doc ids or outlet names; empty: every indexed article
    announcement_channel: int | None
    forum_tag: str | None  # forum posts with this tag get an answer; None: forums are left alone
    overridden: frozenset[str] = field(default_factory=frozenset)

    def from_environment(self, key: str) -> bool:
        return key not in self.overridden

    def answers_in(self, channel_id: int, parent_id: int | None = None) -> bool:
        """Whether a mention in this channel (or a thread of `parent_id`) is answered."""
        if not self.answer_channels:
            return True
        return channel_id in self.answer_channels or (parent_id is not None and parent_id in self.answer_channels)


def environment_config(settings: Settings, guild_id: int) -> ServerConfig:
    return ServerConfig(
        guild_id=guild_id,
        answer_channels=tuple(settings.allowed_channel_ids),
        visibility=settings.answer_visibility,
        question_budget=QuestionBudgetSetting(settings.ask_burst, settings.ask_window_seconds),
        sources=(),
        announcement_channel=None,  # the feeds work announces nowhere until a server names a channel
        forum_tag=settings.forum_answer_tag.strip() or None,
    )


def allowed_doc_ids(sources: Sequence[str], documents: Iterable[Any]) -> frozenset[str] | None:
    """The articles a server's `sources` admit: those whose id, or whose outlet's name (any case), is
    listed. None when the list is empty (every article)."""
    if not sources:
        return None
    wanted = {s.casefold() for s in sources}
    return frozenset(d.doc_id for d in documents
                     if d.doc_id.casefold() in wanted or (d.source or "").strip().casefold() in wanted)


def check_sources(sources: Sequence[str], documents: Sequence[Any]) -> None:
    """Refuse a source list naming something no indexed article has (a typo would silently admit nothing)."""
    for entry in sources:
        if not allowed_doc_ids([entry], documents):
            raise ServerSettingError(
                f"No indexed article has the id or outlet {entry[:80]!r}. /sources lists the articles with "
                "their ids and outlets."
            )


class ServerSettingsStore:
    """Read and change servers' settings. Thread-safe; reads are cached in memory, since every question
    reads them on the event loop (the cache is refreshed from the database by `reload`)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._lock = threading.Lock()
        conn.executescript(_SCHEMA)
        self._cache: dict[int, dict[str, Any]] = {}
        self.reload()

    @classmethod
    def open(cls, settings: Settings) -> ServerSettingsStore:
        return cls(connect_state(settings.data_dir))

    def reload(self) -> None:
        stored: dict[int, dict[str, Any]] = {}
        for row in self.conn.execute("SELECT guild_id, key, value FROM server_settings"):
            if row["key"] in KEYS:  # a key an older or newer Verbatim wrote is ignored, not fatal
                stored.setdefault(row["guild_id"], {})[row["key"]] = json.loads(row["value"])
        self._cache = stored

    def config(self, guild_id: int, defaults: Settings) -> ServerConfig:
        """The server's effective settings: its own values over the environment's (`defaults`)."""
        base = environment_config(defaults, guild_id)
        own = self._cache.get(guild_id, {})
        values: dict[str, Any] = {}
        if "answer_channels" in own:
            values["answer_channels"] = tuple(int(c) for c in own["answer_channels"])
        if "visibility" in own:
            values["visibility"] = own["visibility"]
        if "question_budget" in own:
            burst, window = own["question_budget"]
            values["question_budget"] = QuestionBudgetSetting(int(burst), float(window))
        if "sources" in own:
            values["sources"] = tuple(own["sources"])
        if "announcement_channel" in own:
            values["announcement_channel"] = own["announcement_channel"]
        if "forum_tag" in own:
            values["forum_tag"] = own["forum_tag"]
        return ServerConfig(**{**base.__dict__, **values, "overridden": frozenset(own)})

    # ------------------------------------------------------------ changes

    def set_answer_channels(self, guild_id: int, channel_ids: Sequence[int]) -> None:
        unique = list(dict.fromkeys(int(c) for c in channel_ids))
        if len(unique) > MAX_CHANNELS:
            raise ServerSettingError(f"At most {MAX_CHANNELS} answer channels; name fewer.")
        self._set(guild_id, "answer_channels", unique)

    def set_visibility(self, guild_id: int, visibility: str) -> None:
        if visibility not in VISIBILITIES:
            raise ServerSettingError(f"Visibility must be public or ephemeral, not {visibility[:40]!r}.")
        self._set(guild_id, "visibility", visibility)

    def set_question_budget(self, guild_id: int, burst: int, window_seconds: float) -> None:
        if not 0 <= burst <= 1000 or not 1 <= window_seconds <= 86_400:
            raise ServerSettingError(
                "The question budget is 0 to 1000 questions (0: no limit) per 1 to 86,400 seconds."
            )
        self._set(guild_id, "question_budget", [int(burst), float(window_seconds)])

    def set_sources(self, guild_id: int, sources: Sequence[str], documents: Sequence[Any]) -> None:
        cleaned = list(dict.fromkeys(" ".join(s.split()) for s in sources if s.strip()))
        if not cleaned:
            raise ServerSettingError("Name at least one article id or outlet, or use /config reset to allow all.")
        if len(cleaned) > MAX_SOURCES:
            raise ServerSettingError(f"At most {MAX_SOURCES} sources; name outlets to cover many articles at once.")
        check_sources(cleaned, documents)
        self._set(guild_id, "sources", cleaned)

    def set_announcement_channel(self, guild_id: int, channel_id: int) -> None:
        self._set(guild_id, "announcement_channel", int(channel_id))

    def set_forum_tag(self, guild_id: int, tag: str) -> None:
        name = " ".join(tag.split())
        if not name or len(name) > MAX_TAG_CHARS:
            raise ServerSettingError(f"A forum tag name is 1 to {MAX_TAG_CHARS} characters.")
        self._set(guild_id, "forum_tag", name)

    def reset(self, guild_id: int, key: str | None = None) -> None:
        """Back to the environment's value for `key`, or for every setting when `key` is None."""
        if key is not None and key not in KEYS:
            raise ServerSettingError(f"There is no setting {key[:40]!r}; the settings are {', '.join(KEYS)}.")
        with transaction(self.conn, self._lock):
            if key is None:
                self.conn.execute("DELETE FROM server_settings WHERE guild_id = ?", (guild_id,))
            else:
                self.conn.execute("DELETE FROM server_settings WHERE guild_id = ? AND key = ?", (guild_id, key))
        own = dict(self._cache.get(guild_id, {}))
        for name in ([key] if key else list(own)):
            own.pop(name, None)
        self._cache = {**self._cache, guild_id: own}

    def _set(self, guild_id: int, key: Key, value: Any) -> None:
        with transaction(self.conn, self._lock):
            self.conn.execute(
                "INSERT INTO server_settings VALUES (?, ?, ?) "
                "ON CONFLICT (guild_id, key) DO UPDATE SET value = excluded.value",
                (guild_id, key, json.dumps(value)),
            )
        # A new dict, assigned at once: readers on the event loop see the old or the new settings.
        self._cache = {**self._cache, guild_id: {**self._cache.get(guild_id, {}), key: value}}

