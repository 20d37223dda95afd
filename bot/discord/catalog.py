"""The indexed articles' ids and titles, kept in memory so that autocomplete answers at once.

Autocomplete must answer within Discord's 3 seconds and runs on the event loop, so it never asks the
engine: the catalog is refreshed off the loop when the bot starts and after every re-index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from discord import app_commands

from bot.discord.formatting import CHOICE_NAME, CHOICE_VALUE, CHOICES, source_label, truncate
from index.server_settings import allowed_doc_ids


@dataclass(frozen=True)
class Entry:
    doc_id: str
    title: str
    label: str  # "title — outlet, date", what a user sees in the list
    source: str | None  # the outlet, which a server's /config sources may name


@dataclass(frozen=True)
class Scope:
    """What a server's questions search: the articles it allows (None: every indexed one) and how a
    footer names them ("all 31 indexed articles", "the 2 articles this server uses")."""

    allowed: frozenset[str] | None
    words: str

    @classmethod
    def of(cls, allowed: frozenset[str] | None, indexed: int) -> Scope:
        if allowed is not None:
            return cls(allowed, "the 1 article this server uses" if len(allowed) == 1
                       else f"the {len(allowed)} articles this server uses")
        return cls(None, "the 1 indexed article" if indexed == 1 else f"all {indexed} indexed articles")

    def admits(self, doc_id: str) -> bool:
        return self.allowed is None or doc_id in self.allowed


class SourceCatalog:
    def __init__(self) -> None:
        self._entries: tuple[Entry, ...] = ()
        # A server's allowed ids by its /config sources, for autocomplete on the loop; emptied at refresh.
        self._allowed: dict[tuple[str, ...], frozenset[str] | None] = {}

    def refresh(self, engine: Any) -> None:
        """Re-read the article list from `engine`. Blocking: call it in a worker thread."""
        entries = tuple(Entry(d.doc_id, d.title or d.doc_id, source_label(d), d.source) for d in engine.sources())
        # One assignment each, so readers on the loop see the old or the new list.
        self._entries, self._allowed = entries, {}

    def allowed(self, sources: Sequence[str]) -> frozenset[str] | None:
        """The ids a server's /config sources admit among these articles (None: all), remembered until
        the next refresh so that autocomplete stays instant."""
        key = tuple(sources)
        if not key:
            return None
        if key not in self._allowed:
            self._allowed = {**self._allowed, key: allowed_doc_ids(key, self._entries)}
        return self._allowed[key]

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, doc_id: str) -> Entry | None:
        return next((e for e in self._entries if e.doc_id == doc_id), None)

    def resolve(self, typed: str) -> Entry | None:
        """An entry by id, or by its exact title (case-insensitive), for users who type instead of picking."""
        typed = (typed or "").strip()
        folded = typed.casefold()
        return self.get(typed) or next((e for e in self._entries if e.title.casefold() == folded), None)

    def choices(self, typed: str, allowed: frozenset[str] | None = None) -> list[app_commands.Choice[str]]:
        """At most 25 choices whose title or id contains what was typed, prefix matches first; only the
        `allowed` articles when given (a server's /config sources)."""
        needle = (typed or "").strip().casefold()
        starts, contains = [], []
        for entry in self._entries:
            if allowed is not None and entry.doc_id not in allowed:
                continue
            if len(entry.doc_id) > CHOICE_VALUE:
                continue  # Discord refuses longer values; such an article can still be named by /source's id
            haystacks = (entry.title.casefold(), entry.doc_id.casefold())
            if any(h.startswith(needle) for h in haystacks):
                starts.append(entry)
            elif any(needle in h for h in haystacks):
                contains.append(entry)
            if len(starts) >= CHOICES:
                break
        picked = (starts + contains)[:CHOICES]
        return [app_commands.Choice(name=truncate(e.label, CHOICE_NAME), value=e.doc_id) for e in picked]
