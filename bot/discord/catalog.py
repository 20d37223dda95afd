"""The indexed articles' ids and titles, kept in memory so that autocomplete answers at once.

Autocomplete must answer within Discord's 3 seconds and runs on the event loop, so it never asks the
engine: the catalog is refreshed off the loop when the bot starts and after every re-index.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from discord import app_commands

from bot.discord.formatting import CHOICE_NAME, CHOICE_VALUE, CHOICES, source_label, truncate


@dataclass(frozen=True)
class Entry:
    doc_id: str
    title: str
    label: str  # "title — outlet, date", what a user sees in the list


class SourceCatalog:
    def __init__(self) -> None:
        self._entries: tuple[Entry, ...] = ()

    def refresh(self, engine: Any) -> None:
        """Re-read the article list from `engine`. Blocking: call it in a worker thread."""
        entries = tuple(Entry(d.doc_id, d.title or d.doc_id, source_label(d)) for d in engine.sources())
        self._entries = entries  # one assignment, so readers on the loop see the old or the new list

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, doc_id: str) -> Entry | None:
        return next((e for e in self._entries if e.doc_id == doc_id), None)

    def resolve(self, typed: str) -> Entry | None:
        """An entry by id, or by its exact title (case-insensitive), for users who type instead of picking."""
        typed = (typed or "").strip()
        folded = typed.casefold()
        return self.get(typed) or next((e for e in self._entries if e.title.casefold() == folded), None)

    def choices(self, typed: str) -> list[app_commands.Choice[str]]:
        """At most 25 choices whose title or id contains what was typed, prefix matches first."""
        needle = (typed or "").strip().casefold()
        starts, contains = [], []
        for entry in self._entries:
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
