"""A per-user cooldown on questions, shared by /ask and mentions.

discord.py's `app_commands.checks.cooldown` keeps its buckets in the decorator, once per process, so
two bots (or two tests) would share them. Here the state belongs to one bot instance, and it reads
`time.monotonic`, which simulated clocks can move.
"""

from __future__ import annotations

import time

from discord import app_commands


class QuestionCooldown:
    """One question per `seconds` for each user; 0 seconds turns the cooldown off."""

    def __init__(self, seconds: float) -> None:
        self.seconds = float(seconds)
        self._last: dict[int, float] = {}

    def retry_after(self, user_id: int) -> float:
        """0 if the user may ask now (and the question is counted), else the seconds left to wait."""
        if self.seconds <= 0:
            return 0.0
        now = time.monotonic()
        last = self._last.get(user_id)
        if last is not None and now - last < self.seconds:
            return self.seconds - (now - last)
        self._last[user_id] = now
        if len(self._last) > 10_000:  # forget users whose cooldown ended, so memory stays bounded
            self._last = {u: t for u, t in self._last.items() if now - t < self.seconds}
        return 0.0

    def error(self, retry_after: float) -> app_commands.CommandOnCooldown:
        """The error the command tree reports, so that one handler words it for every command."""
        return app_commands.CommandOnCooldown(app_commands.Cooldown(1, self.seconds), retry_after)
