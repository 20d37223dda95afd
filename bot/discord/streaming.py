"""Showing a written answer (ANSWER_MODE=llm) while the model writes it, as llmcord does, but only
sentences that have passed their checks: the engine hands over the answer so far each time another
sentence passes (Engine.ask's `on_written`), and the message shows it, edited at most once a second.
When the answer is done it replaces what was shown, with its "Show quotes" button; an extractive answer
(or one that fell back to quotes) is simply posted.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import replace
from typing import Any

import discord

from bot.discord import formatting
from bot.discord.errors import NONE
from index.answers.compose import Answer

# Discord allows about five edits of a message in five seconds; llmcord waits one second between edits too.
EDIT_INTERVAL = 1.0

Send = Callable[[bool, dict[str, Any]], Awaitable[Any]]
Post = Callable[[Answer, str, Send], Awaitable[None]]
AskWithUpdates = Callable[[Callable[[Answer], None]], Answer]


async def answer_as_written(ask: AskWithUpdates, scope: str, send: Send, post: Post,
                            interval: float = EDIT_INTERVAL, executor: Executor | None = None) -> Answer:
    """Run `ask(on_written)` in a worker thread (of `executor`, else the default pool), show what it hands
    over as it comes, then `post` the answer and return it.

    `send(first, kwargs)` posts a message (as for `post`); the first one shown is later edited into the
    answer's first message."""
    loop = asyncio.get_running_loop()
    arrived = asyncio.Event()
    latest: list[Answer] = []

    def on_written(partial: Answer) -> None:  # called in the worker thread
        loop.call_soon_threadsafe(_arrive, partial)

    def _arrive(partial: Answer) -> None:
        latest.append(partial)
        arrived.set()

    # In a copy of this context, as asyncio.to_thread does, so the handed-over sentences arrive in it.
    work = loop.run_in_executor(executor, functools.partial(contextvars.copy_context().run, ask, on_written))
    message: Any = None
    shown, shown_at = 0, 0.0
    while not work.done():
        waits: set[asyncio.Future[Any]] = {work, asyncio.ensure_future(arrived.wait())}
        timeout = None
        if len(latest) > shown and message is not None:
            # A sentence held back by the interval: wake when it may be shown (a loop timer, which
            # holds no thread and ends with the wait).
            timeout = max(shown_at + interval - time.perf_counter(), 0.0)
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        for waiting in waits - {work}:
            waiting.cancel()
        arrived.clear()
        if work.done() or len(latest) == shown:
            continue
        if message is None or time.perf_counter() - shown_at >= interval:
            message = await _show(latest[-1], scope, send, message)
            shown, shown_at = len(latest), time.perf_counter()
    answer = work.result()  # the engine's errors go to the caller's error handling, as without streaming
    if message is None:
        await post(answer, scope, send)
        return answer

    def edit_first(first: bool, kwargs: dict[str, Any]) -> Awaitable[Any]:
        return _edited(message, kwargs) if first else send(False, kwargs)

    await post(answer, scope, edit_first)
    return answer


async def _show(partial: Answer, scope: str, send: Send, message: Any) -> Any:
    """Post or update the answer so far (its first message: two or three sentences fit in one)."""
    embeds = formatting.answer_messages(replace(partial, timings_ms={}), scope=scope)[0]
    if message is None:
        return await send(True, {"embeds": embeds, "allowed_mentions": NONE})
    return await _edited(message, {"embeds": embeds, "allowed_mentions": NONE})


async def _edited(message: discord.Message | discord.WebhookMessage, kwargs: dict[str, Any]) -> Any:
    edited = await message.edit(**kwargs)
    return edited if edited is not None else message
