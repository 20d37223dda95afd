"""The per-user question budget on its own, with a clock the test moves."""

from __future__ import annotations

from bot.discord.cooldown import QuestionBudget


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_is_allowed_and_the_window_slides():
    clock = Clock()
    budget = QuestionBudget(burst=5, window_seconds=60, clock=clock)
    for _ in range(5):  # five questions, one every ten seconds
        assert budget.take(1) == 0.0
        clock.now += 10
    # At 50 s the first question is 50 s old: 10 s to wait, and a refusal is not counted.
    assert budget.take(1) == 10.0
    assert budget.take(1) == 10.0
    assert budget.take(2) == 0.0  # others are not affected
    clock.now += 10  # the first question leaves the window; only one more fits, not a new burst
    assert budget.take(1) == 0.0
    assert budget.take(1) == 10.0
    clock.now += 60
    assert all(budget.take(1) == 0.0 for _ in range(5))


def test_a_burst_of_zero_turns_the_budget_off():
    budget = QuestionBudget(burst=0, window_seconds=60, clock=Clock())
    assert all(budget.take(1) == 0.0 for _ in range(1000))
    assert len(budget) == 0


def test_memory_stays_bounded_however_many_users_ask():
    clock = Clock()
    budget = QuestionBudget(burst=5, window_seconds=60, clock=clock, max_users=1000)
    for user in range(50_000):
        assert budget.take(user) == 0.0
        clock.now += 0.001  # a flood: 50,000 users within 50 s
    assert len(budget) == 1000
    # The users kept are the most recent ones, and their budgets are intact.
    for _ in range(4):
        assert budget.take(49_999) == 0.0
    assert budget.take(49_999) > 0
    # Users whose window has passed are forgotten as soon as anyone asks.
    clock.now += 61
    budget.take(7)
    assert len(budget) == 1
