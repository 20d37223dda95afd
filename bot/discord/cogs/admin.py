"""/reindex and /ingest: change the corpus and swap in the new index while the current one keeps answering.

Both are for members with Manage Server: `default_permissions` hides them from everyone else in the
client, and `has_permissions` refuses them at run time if a server shows them to someone anyway.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, TypeVar

import discord
from discord import app_commands
from discord.ext import commands, tasks

from bot.discord import formatting
from bot.discord.errors import NONE
from index.errors import VerbatimError

if TYPE_CHECKING:
    from bot.discord.client import VerbatimBot

log = logging.getLogger("verbatim.discord.admin")

T = TypeVar("T")


class ProgressReporter:
    """Turns the engine's progress calls (from a worker thread) into edits of the command's reply.

    One edit per stage, and at most one a second within a stage, so a long build does not hit
    Discord's rate limits; `finish` waits for edits still in flight so the summary always lands last.
    """

    def __init__(self, interaction: discord.Interaction) -> None:
        self._interaction = interaction
        self._loop = asyncio.get_running_loop()
        self._lock = asyncio.Lock()  # FIFO, so edits land in the order they were made
        self._pending: list[Future[None]] = []
        self._stage: str | None = None
        self._at = 0.0

    def __call__(self, progress: Any) -> None:  # called in the worker thread
        now = time.monotonic()
        if progress.stage == self._stage and now - self._at < 1.0:
            return
        self._stage, self._at = progress.stage, now
        text = formatting.progress_text(progress)
        self._pending.append(asyncio.run_coroutine_threadsafe(self._edit(text), self._loop))

    async def _edit(self, text: str) -> None:
        async with self._lock:
            try:
                await self._interaction.edit_original_response(content=text, allowed_mentions=NONE)
            except discord.HTTPException as exc:  # progress is a courtesy; the summary still follows
                log.warning("could not show re-index progress: %s", exc)

    async def finish(self) -> None:
        await asyncio.gather(*(asyncio.wrap_future(f) for f in self._pending), return_exceptions=True)


class Admin(commands.Cog):
    def __init__(self, bot: VerbatimBot) -> None:
        self.bot = bot
        # Another process may change the index (a shard or replica on the same Postgres or folder, or
        # `verbatim add` in a terminal): this one checks every INDEX_FOLLOW_SECONDS and switches to it.
        self.following = tasks.loop(seconds=bot.settings.index_follow_seconds)(self.follow_once)
        self._follow_failing = False

    async def cog_load(self) -> None:
        self.following.start()

    async def cog_unload(self) -> None:
        self.following.cancel()

    async def follow_once(self) -> bool:
        try:
            switched = await self.bot.in_background(self.bot.live.follow)
        except Exception as error:  # a database that is briefly away must not stop the loop: the next tick retries
            if not self._follow_failing:  # once per outage, not every few seconds
                log.warning("could not check for a newer index version: %s", error,
                            exc_info=not isinstance(error, VerbatimError))
            self._follow_failing = True
            return False
        if self._follow_failing:
            log.info("checking for newer index versions works again")
            self._follow_failing = False
        if switched:
            log.info("now serving index version %s, written by another process", self.bot.live.current.stored.version)
            await asyncio.to_thread(self.bot.catalog.refresh, self.bot.live.current)
            self.bot.health.reindexed("follow")
        return switched

    @app_commands.command(name="reindex", description="Re-read corpus/ and update the index (Manage Server).")
    @app_commands.describe(full="Embed every article again instead of only new and changed ones")
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.checks.has_permissions(manage_guild=True)
    async def reindex(self, interaction: discord.Interaction, full: bool = False) -> None:
        log.info("re-index (full=%s) started by user %s", full, interaction.user.id)
        report = await self._update(interaction, lambda progress: self.bot.live.reindex(full=full, progress=progress))
        self.bot.health.reindexed("reindex")
        log.info("re-index done: %s documents, %s passages in %.1f s",
                 report.documents, report.passages, report.seconds)
        summary = formatting.reindex_embed(report)
        await interaction.edit_original_response(content=None, embed=summary, allowed_mentions=NONE)

    @app_commands.command(name="ingest", description="Add the article at a web address to the corpus (Manage Server).")
    @app_commands.describe(url="The article's full address, https://…")
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.checks.has_permissions(manage_guild=True)
    async def ingest(self, interaction: discord.Interaction, url: str) -> None:
        log.info("ingest of %r started by user %s", url, interaction.user.id)
        report = await self._update(interaction, lambda progress: self.bot.live.ingest(url, progress=progress))
        if report.status == "added":  # a duplicate leaves the index as it was
            self.bot.health.reindexed("ingest")
        summary = formatting.ingest_embed(report)
        await interaction.edit_original_response(content=None, embed=summary, allowed_mentions=NONE)

    async def _update(self, interaction: discord.Interaction, work: Callable[[ProgressReporter], T]) -> T:
        """Run a corpus change off the event loop, showing its progress; the old index answers meanwhile."""
        await interaction.response.defer(thinking=True, ephemeral=True)
        reporter = ProgressReporter(interaction)
        try:
            result = await self.bot.in_background(work, reporter)  # threads of its own: questions go on
        finally:
            await reporter.finish()  # so no late progress edit can overwrite the summary
        await asyncio.to_thread(self.bot.catalog.refresh, self.bot.live.current)
        return result
