"""Building and starting the bot: intents, cogs, command sync, and start-up errors in one clear line."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import discord
from discord.ext import commands

from bot.discord.catalog import SourceCatalog
from bot.discord.cogs.about import About
from bot.discord.cogs.admin import Admin
from bot.discord.cogs.ask import Ask
from bot.discord.cogs.feeds import Feeds
from bot.discord.cogs.sources import Sources
from bot.discord.cooldown import QuestionBudget
from bot.discord.errors import NONE, StartupError, VerbatimTree
from index.engine import LiveEngine
from index.settings import Settings

log = logging.getLogger("verbatim.discord")

MISSING_INTENT = (
    "The Message Content intent is not enabled for this bot, so it cannot read replies that do not mention it "
    "(slash commands and @mentions keep working). Enable it under Bot → Privileged Gateway Intents in the "
    "Discord Developer Portal, then restart."
)


class VerbatimBot(commands.Bot):
    """The bot and everything its cogs share: settings, the live engine, the source catalog, the question budget."""

    def __init__(self, settings: Settings, live: LiveEngine, *, message_content: bool = True) -> None:
        intents = discord.Intents.default()
        intents.message_content = message_content  # privileged: needed to read mentions and replies
        super().__init__(
            # There are no prefix commands; mentions are questions, handled by the Ask cog.
            command_prefix=commands.when_mentioned,
            intents=intents,
            allowed_mentions=NONE,  # quoted sources and echoed questions must never ping anyone
            help_command=None,
            tree_cls=VerbatimTree,
        )
        self.settings = settings
        self.live = live
        self.catalog = SourceCatalog()
        self.question_budget = QuestionBudget(settings.ask_burst, settings.ask_window_seconds)
        self.feed_poll_seconds = 60.0  # how often the Feeds cog looks for feeds that are due

    async def setup_hook(self) -> None:
        for cog in (Ask(self), Sources(self), Admin(self), About(self), Feeds(self)):
            await self.add_cog(cog)
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

    async def on_message(self, message: discord.Message) -> None:
        # commands.Bot would try to run prefix commands here; there are none, so do nothing.
        return

    async def on_ready(self) -> None:
        log.info("logged in as %s (%s) in %d servers", self.user, getattr(self.user, "id", "?"), len(self.guilds))


def create_bot(settings: Settings, live: LiveEngine, *, message_content: bool = True) -> VerbatimBot:
    """A ready-to-start bot over `live`; nothing connects until it is started."""
    return VerbatimBot(settings, live, message_content=message_content)


Connect = Callable[[commands.Bot], Awaitable[Any]]


async def serve(settings: Settings, live: LiveEngine, connect: Connect) -> commands.Bot:
    """Connect a bot with the Message Content intent, or, if Discord refuses it, one without.

    `connect` runs the bot (in production, until it closes). Without the intent the bot still serves
    slash commands, and says once, clearly, why mentions get no answer.
    """
    bot = create_bot(settings, live)
    try:
        await connect(bot)
        return bot
    except discord.PrivilegedIntentsRequired:
        log.warning(MISSING_INTENT)
    bot = create_bot(settings, live, message_content=False)
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
    live = LiveEngine.open(settings)  # raises IndexMissingError, which says how to build the index
    try:
        asyncio.run(start(settings, live, token))
    except KeyboardInterrupt:
        log.info("stopped")


async def start(settings: Settings, live: LiveEngine, token: str) -> None:
    """Connect to Discord and serve until the bot is closed; Discord's refusals become StartupError."""
    try:
        await serve(settings, live, lambda bot: _connect(bot, token))
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
