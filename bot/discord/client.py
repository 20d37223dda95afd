"""Building and starting the bot: intents, cogs, command sync, and start-up errors in one clear line."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import sys
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import discord
from discord.ext import commands

from bot.discord.catalog import Scope, SourceCatalog
from bot.discord.cogs.about import About
from bot.discord.cogs.admin import Admin
from bot.discord.cogs.ask import Ask
from bot.discord.cogs.check import Check
from bot.discord.cogs.config import Config
from bot.discord.cogs.feedback import Feedback, QuotesButton, VoteButton
from bot.discord.cogs.feeds import Feeds
from bot.discord.cogs.sources import Sources
from bot.discord.cogs.timeline import Timeline
from bot.discord.cooldown import QuestionBudget, ServerBudgets
from bot.discord.errors import NONE, StartupError, VerbatimTree
from bot.health import Health, serve_health
from index.engine import Engine, LiveEngine
from index.feedback import FeedbackStore
from index.server_settings import ServerConfig, ServerSettingsStore, allowed_doc_ids
from index.settings import Settings
from index.state import connect_state

log = logging.getLogger("verbatim.discord")

T = TypeVar("T")

# Threads of their own for long work, so that it never holds the default pool that asyncio.to_thread
# shares (a few threads on a small machine) and questions never wait for a free thread: feed polls
# and re-indexes (one at a time anyway, under the build lock), and written answers (ANSWER_MODE=llm),
# which wait seconds on the model.
BACKGROUND_THREADS = 2
WRITER_THREADS = 4

MISSING_INTENT = (
    "The Message Content intent is not enabled for this bot, so it cannot read replies that do not mention it "
    "(slash commands and @mentions keep working). Enable it under Bot → Privileged Gateway Intents in the "
    "Discord Developer Portal, then restart."
)


class VerbatimBot(commands.Bot):
    """The bot and everything its cogs share: settings, the live engine, the source catalog, the question budget."""

    def __init__(self, settings: Settings, live: LiveEngine, *, message_content: bool = True,
                 health: Health | None = None, **options: Any) -> None:
        intents = discord.Intents.default()
        intents.message_content = message_content  # privileged: needed to read mentions and replies
        super().__init__(
            # There are no prefix commands; mentions are questions, handled by the Ask cog.
            command_prefix=commands.when_mentioned,
            intents=intents,
            allowed_mentions=NONE,  # quoted sources and echoed questions must never ping anyone
            help_command=None,
            tree_cls=VerbatimTree,
            **options,
        )
        self.settings = settings
        self.live = live
        self.health = health or Health()  # /healthz and /metrics (bot/health.py)
        self.health.live, self.health.client = live, self
        self.catalog = SourceCatalog()
        self.question_budgets = ServerBudgets()
        # The data folder's database: answers and their votes, and servers' own settings. A connection
        # each, so that one's write transaction never meets the other's on the same connection.
        self.feedback = FeedbackStore(connect_state(settings.data_dir), retention_days=settings.feedback_retention_days)
        self.servers = ServerSettingsStore(connect_state(settings.data_dir))
        self.feed_poll_seconds = 60.0  # how often the Feeds cog looks for feeds that are due
        self.background_jobs = ThreadPoolExecutor(BACKGROUND_THREADS, thread_name_prefix="verbatim-background")
        self.writer_jobs = ThreadPoolExecutor(WRITER_THREADS, thread_name_prefix="verbatim-writer")

    async def setup_hook(self) -> None:
        for cog in (Ask(self), Sources(self), Admin(self), About(self), Feedback(self), Config(self),
                    Timeline(self), Feeds(self)):
            await self.add_cog(cog)
        await self.add_cog(Check(self))  # /check and the "Check with sources" message menu
        # Buttons under answers route by their custom ids, so old messages' buttons work after a restart.
        self.add_dynamic_items(QuotesButton, VoteButton)
        await asyncio.to_thread(self.catalog.refresh, self.live.current)
        guild_id = self.settings.discord_guild_id
        if guild_id:
            # Guild commands update at once, which is what development needs.
            guild = discord.Object(id=guild_id)
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
            log.info("synced %d commands to server %s", len(synced), guild_id)
        else:
            synced = await self.tree.sync()
            log.info("synced %d global commands (Discord may take a while to show changes)", len(synced))

    async def close(self) -> None:
        await super().close()
        self.feedback.conn.close()
        self.servers.conn.close()
        for executor in (self.background_jobs, self.writer_jobs):
            executor.shutdown(wait=False, cancel_futures=True)

    async def in_background(self, work: Callable[..., T], *args: Any) -> T:
        """Run long blocking work (a feed poll, a re-index) on the bot's background threads (in a copy of
        this context, as asyncio.to_thread does, so what the work schedules back on the loop runs in it)."""
        call = functools.partial(contextvars.copy_context().run, work, *args)
        return await asyncio.get_running_loop().run_in_executor(self.background_jobs, call)

    @property
    def polls_feeds(self) -> bool:
        """Whether this process polls feeds: FEED_POLLING, and only the process that runs shard 0 (or
        every shard), so that several shard processes do not all poll the same feeds."""
        ids = self.settings.shard_ids
        return self.settings.feed_polling and (not ids or 0 in ids)

    # ---------------------------------------------------------------- per-server settings

    def server_config(self, guild_id: int) -> ServerConfig:
        """A server's effective settings (its /config over the environment). In memory: safe on the loop."""
        return self.servers.config(guild_id, self.settings)

    def question_budget(self, guild_id: int | None) -> QuestionBudget:
        """The question budget of a server (or, for direct messages, the environment's)."""
        if guild_id is None:
            burst, window = self.settings.ask_burst, self.settings.ask_window_seconds
        else:
            budget = self.server_config(guild_id).question_budget
            burst, window = budget.burst, budget.window_seconds
        return self.question_budgets.for_server(guild_id, burst, window)

    def answers_privately(self, guild_id: int | None) -> bool:
        """Whether a server shows command answers (/ask, /check, /timeline) to the asker only (`/config visibility`)."""
        return guild_id is not None and self.server_config(guild_id).visibility == "ephemeral"

    def scope(self, engine: Engine, guild_id: int | None) -> Scope:
        """What a server's questions search (its /config sources, else every indexed article), for /ask,
        /check, /timeline, /search and /sources alike. Blocking for a big corpus: call it in a thread."""
        sources = self._server_sources(guild_id)
        allowed = allowed_doc_ids(sources, engine.sources()) if sources else None
        return Scope.of(allowed, len(self.catalog) or engine.info().documents)

    def catalog_allowed(self, guild_id: int | None) -> frozenset[str] | None:
        """`scope(...).allowed` from the in-memory catalog: for autocomplete, which must answer at once."""
        return self.catalog.allowed(self._server_sources(guild_id))

    def _server_sources(self, guild_id: int | None) -> tuple[str, ...]:
        return self.server_config(guild_id).sources if guild_id is not None else ()

    async def on_message(self, message: discord.Message) -> None:
        # commands.Bot would try to run prefix commands here; there are none, so do nothing.
        return

    async def on_ready(self) -> None:
        ids = getattr(self, "shard_ids", None) or "all"  # only a ShardedVerbatimBot has shard ids
        shards = f" on shards {ids} of {self.shard_count}" if self.shard_count else ""
        log.info("logged in as %s (%s) in %d servers%s", self.user, getattr(self.user, "id", "?"), len(self.guilds),
                 shards)


class ShardedVerbatimBot(VerbatimBot, commands.AutoShardedBot):
    """The same bot over SHARD_COUNT gateway connections: all of them in this process, or only SHARD_IDS
    (other processes run the rest; Discord sends each server's events to one shard only)."""


def create_bot(settings: Settings, live: LiveEngine, *, message_content: bool = True,
               health: Health | None = None) -> VerbatimBot:
    """A ready-to-start bot over `live`, sharded when SHARD_COUNT is set; nothing connects until it is started."""
    if settings.shard_count is None:
        return VerbatimBot(settings, live, message_content=message_content, health=health)
    return ShardedVerbatimBot(settings, live, message_content=message_content, health=health,
                              shard_count=settings.shard_count, shard_ids=settings.shard_ids or None)


Connect = Callable[[commands.Bot], Awaitable[Any]]


async def serve(settings: Settings, live: LiveEngine, connect: Connect, health: Health | None = None) -> commands.Bot:
    """Connect a bot with the Message Content intent, or, if Discord refuses it, one without.

    `connect` runs the bot (in production, until it closes). Without the intent the bot still serves
    slash commands, and says once, clearly, why mentions get no answer.
    """
    bot = create_bot(settings, live, health=health)
    try:
        await connect(bot)
        return bot
    except discord.PrivilegedIntentsRequired:
        log.warning(MISSING_INTENT)
    bot = create_bot(settings, live, message_content=False, health=health)
    await connect(bot)
    return bot


async def _connect(bot: commands.Bot, token: str) -> None:
    async with bot:  # closes the HTTP session and gateway however start() ends
        await bot.start(token)


def run_bot(settings: Settings) -> None:
    """Load the index and run the bot until it is stopped. Raises StartupError, or the engine's errors."""
    if settings.discord_token is None:
        raise StartupError(
            "DISCORD_TOKEN is not set. Put the bot token from the Discord Developer Portal (Bot → Reset Token) "
            "in the environment or in .env; see docs/discord.md."
        )
    token = settings.discord_token.get_secret_value().strip()
    configure_logging(settings)
    _redact_in_logs(token)
    health = Health()
    with serve_health(settings, health):  # from before the index loads, so /healthz says "not ready yet"
        live = LiveEngine.open(settings)  # raises IndexMissingError, which says how to build the index
        try:
            asyncio.run(start(settings, live, token, health))
        except KeyboardInterrupt:
            log.info("stopped")


async def start(settings: Settings, live: LiveEngine, token: str, health: Health | None = None) -> None:
    """Connect to Discord and serve until the bot is closed; Discord's refusals become StartupError."""
    try:
        await serve(settings, live, lambda bot: _connect(bot, token), health)
    except discord.LoginFailure:
        raise StartupError(
            "Discord refused DISCORD_TOKEN. Copy a fresh token from the Developer Portal (Bot → Reset Token) "
            "into .env or the environment; see docs/discord.md."
        ) from None
    except discord.PrivilegedIntentsRequired:
        # Only reached when Discord refuses even the intents that need no approval: a portal problem.
        raise StartupError(MISSING_INTENT) from None


def configure_logging(settings: Settings) -> None:
    """Log lines with their level to stdout, once; the token never appears in them (see _redact_in_logs)."""
    root = logging.getLogger()
    if not any(getattr(h, "_verbatim", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
        handler._verbatim = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(settings.log_level)
    logging.getLogger("discord").setLevel(max(logging.INFO, root.level))  # discord.py's DEBUG is very chatty


class _Redact(logging.Filter):
    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self.secret in message:
            record.msg, record.args = message.replace(self.secret, "[token]"), ()
        return True


def _redact_in_logs(token: str) -> None:
    """Defence in depth: nothing logs the token today, and a filter makes sure nothing will."""
    if token:
        for handler in logging.getLogger().handlers:
            handler.addFilter(_Redact(token))
