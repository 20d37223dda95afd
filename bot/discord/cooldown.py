"""A per-user budget of questions, shared by /ask, mentions and reply follow-ups.

A conversation comes in bursts (a question, a follow-up right after the answer, another one), so the
budget allows `burst` questions in any `window_seconds` rather than one every few seconds; a flood
from one user still stops at the burst. discord.py's `app_commands.checks.cooldown` keeps its buckets
in the decorator, once per process, so two bots (or two tests) would share them: here the state
belongs to one bot instance.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable

from discord import app_commands

MAX_USERS = 10_000  # users remembered at once: about 1 MB at the default burst


def _monotonic() -> float:
    # Looked up at each call, not bound once: a simulated clock (simcord) replaces time.monotonic.
    return time.monotonic()


class QuestionBudget:
    """At most `burst` questions from each user in any `window_seconds` (a sliding window).

    A burst of 0 turns the budget off. Memory stays bounded: users whose window has passed are
    forgotten, and past `max_users` the least recently counted user is forgotten first (under such
    a flood of distinct users, that user gets a fresh budget, which is the price of the bound).
    """

    def __init__(
        self, burst: int, window_seconds: float, *, clock: Callable[[], float] = _monotonic, max_users: int = MAX_USERS
    ) -> None:
        self.burst = burst
        self.window_seconds = float(window_seconds)
        self._clock = clock
        self._max_users = max_users
        # user id → times of their questions still in the window, oldest first; least recently counted users first.
        self._asked: OrderedDict[int, deque[float]] = OrderedDict()

    def __len__(self) -> int:
        """How many users are remembered."""
        return len(self._asked)

    def take(self, user_id: int) -> float:
        """0 if the user may ask now (and the question is counted), else the seconds until they may."""
        if self.burst <= 0:
            return 0.0
        now = self._clock()
        times = self._asked.get(user_id) or deque(maxlen=self.burst)
        while times and now - times[0] >= self.window_seconds:
            times.popleft()
        if len(times) >= self.burst:
            return self.window_seconds - (now - times[0])
        times.append(now)
        self._asked[user_id] = times
        self._asked.move_to_end(user_id)
        self._forget(now)
        return 0.0

    def _forget(self, now: float) -> None:
        # Ordered by their latest question, so the users to forget are all at the front.
        while self._asked:
            latest = next(iter(self._asked.values()))[-1]
            if now - latest < self.window_seconds and len(self._asked) <= self._max_users:
                break
            self._asked.popitem(last=False)

    def error(self, retry_after: float) -> app_commands.CommandOnCooldown:
        """The error the command tree reports, so that one handler words it for every command."""
        return app_commands.CommandOnCooldown(app_commands.Cooldown(self.burst, self.window_seconds), retry_after)


class ServerBudgets:
    """One QuestionBudget per server, each with that server's burst and window (`/config budget`);
    direct messages use the environment's. A server that changes its budget starts a fresh one."""

    def __init__(self, clock: Callable[[], float] = _monotonic) -> None:
        self._clock = clock
        self._budgets: dict[int | None, QuestionBudget] = {}

    def for_server(self, guild_id: int | None, burst: int, window_seconds: float) -> QuestionBudget:
        budget = self._budgets.get(guild_id)
        if budget is None or (budget.burst, budget.window_seconds) != (burst, float(window_seconds)):
            budget = self._budgets[guild_id] = QuestionBudget(burst, window_seconds, clock=self._clock)
        return budget
