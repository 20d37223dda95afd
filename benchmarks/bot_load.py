"""The bot under load: 50 concurrent /ask in the simulated Discord, answers per second, event-loop stalls.

    .venv/bin/python -m benchmarks.bot_load [--users 50] [--size 100k | --size seed]

The real bot (bot/discord/client.py) and the real engine run against simcord's in-memory Discord.
`--size` picks the index: a synthetic one prepared by benchmarks.scale (default 100k passages), or
`seed`, the seed article. All users' /ask interactions are delivered at once (simcord's own `slash`
waits for each to settle, so they are emitted through the same internals it uses), then the
simulated world is settled until every answer is posted.

A watchdog thread asks the event loop to run a callback every 5 ms and records how long each waited:
the worst wait is the longest the loop was blocked (by model, index or anything else).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.common import ROOT, log, machine, percentile, scifact_queries, table  # noqa: E402


class LoopWatchdog:
    """Measures how late the event loop runs callbacks scheduled from another thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float = 0.005) -> None:
        self.loop = loop
        self.interval = interval
        self.delays: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            submitted = time.perf_counter()
            done = threading.Event()

            def ran(submitted=submitted, done=done) -> None:
                self.delays.append(time.perf_counter() - submitted)
                done.set()

            self.loop.call_soon_threadsafe(ran)
            done.wait(30)
            time.sleep(self.interval)

    def __enter__(self) -> LoopWatchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def emit_slash(env, member, channel, name: str, options: dict):
    """What simcord's `member.slash` does, minus waiting for the world to settle."""
    from simcord import actors
    from simcord.enums import AppCommandType, InteractionType
    from simcord.results import InteractionResult

    root = actors._resolve_visible_command(member, channel.id, name, AppCommandType.CHAT_INPUT)
    leaf, nesting = actors._interactions.walk_to_subcommand(root, [])
    leaf_options, resolved = actors._interactions.build_options(member, name, leaf, options, channel_id=channel.id)
    data = {"id": root["id"], "name": root["name"], "type": root.get("type", AppCommandType.CHAT_INPUT),
            "options": actors._interactions.nest_options(root, nesting, leaf_options)}
    if resolved:
        data["resolved"] = resolved
    record, payload = actors._interactions.base_payload(
        env.backend, type=InteractionType.APPLICATION_COMMAND, channel_id=channel.id,
        guild_id=member.guild.id, user_id=member.id, data=data)
    env._notify_dispatch_observers(record)
    env.backend.emit("INTERACTION_CREATE", payload)
    return InteractionResult(env, record)


async def run(users: int, settings, live) -> dict:
    from simcord import Env

    from bot.discord.client import create_bot

    ask_times: list[float] = []
    engine = live.current
    original_ask = engine.ask

    def timed_ask(*args, **kwargs):
        started = time.perf_counter()
        try:
            return original_ask(*args, **kwargs)
        finally:
            ask_times.append(time.perf_counter() - started)

    engine.ask = timed_ask
    bot = create_bot(settings, live)
    env = Env(bot, settle_timeout=600.0)
    await env.start()
    try:
        guild = env.create_guild("Load")
        channel = guild.create_text_channel("news")
        members = [guild.add_member(env.create_user(f"user{n}")) for n in range(users)]
        questions = scifact_queries()
        # One warm-up question, so that first-call costs do not count.
        await members[0].slash(channel, "ask", question=questions[-1])
        ask_times.clear()
        with LoopWatchdog(asyncio.get_running_loop()) as watchdog:
            await asyncio.sleep(0.2)
            idle = list(watchdog.delays)
            started = time.perf_counter()
            results = [emit_slash(env, m, channel, "ask", {"question": questions[n % len(questions)]})
                       for n, m in enumerate(members)]
            await env.settle(timeout=600.0)
            elapsed = time.perf_counter() - started
            busy = watchdog.delays[len(idle):]
        answered = sum(1 for r in results if r.response is not None and r.response.embeds)
        deferred = sum(1 for r in results if r.deferred)
    finally:
        await env.shutdown()
        engine.ask = original_ask
    return {
        "users": users, "answered": answered, "deferred": deferred, "seconds": elapsed,
        "answers_per_second": answered / elapsed,
        "ask_p50": percentile(ask_times, 0.5) * 1000, "ask_p95": percentile(ask_times, 0.95) * 1000,
        "loop_worst": max(busy) * 1000 if busy else float("nan"),
        "loop_p99": percentile(busy, 0.99) * 1000, "loop_median": statistics.median(busy) * 1000 if busy else 0,
        "samples": len(busy),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--size", default="100k", help="synthetic index size prepared by benchmarks.scale, or seed")
    args = parser.parse_args(argv)

    from index.engine import Engine, LiveEngine
    from index.settings import Settings

    print(f"Machine: {machine()}")
    if args.size == "seed":
        from index.store.build import build_index

        work = Path(tempfile.mkdtemp(prefix="verbatim-bot-bench-"))
        shutil.copytree(ROOT / "corpus", work / "corpus")
        settings = Settings(_env_file=None, corpus_dir=work / "corpus", data_dir=work / "var",
                            ask_burst=0)
        settings = settings.model_copy(update={"data_dir": ROOT / "var", "index_dir": work / "var" / "index"})
        build_index(settings)
        described = "the seed article"
    else:
        from benchmarks.scale import label, parse_size, prepare, run_link
        from index.store.vectors import VectorIndexPolicy

        size = parse_size(args.size)
        default = VectorIndexPolicy().choose(size)
        index_dir, _ = prepare(size, [default])
        run_link(index_dir, default)
        settings = Settings(_env_file=None, data_dir=ROOT / "var", index_dir=index_dir, ask_burst=0)
        described = f"{label(size)} synthetic passages ({default} index)"
    log("loading the engine")
    live = LiveEngine(settings, Engine.load(settings))
    log(f"{args.users} concurrent /ask")
    figures = asyncio.run(run(args.users, settings, live))
    print(f"\nBot under load: {args.users} concurrent /ask over {described}, "
          f"embedder {live.current.encoders.dense.backend}")
    print(table(
        ["questions", "answered", "seconds", "answers/s", "engine ask p50 ms", "engine ask p95 ms",
         "loop worst delay ms", "loop p99 delay ms", "loop samples"],
        [[figures["users"], figures["answered"], figures["seconds"], figures["answers_per_second"],
          figures["ask_p50"], figures["ask_p95"], figures["loop_worst"], figures["loop_p99"], figures["samples"]]],
    ))


if __name__ == "__main__":
    main()
