"""/feeds add|list|remove (Manage Server), the background poll of followed feeds, and announcements.

The poll runs on the bot's background threads on its own schedule (LiveEngine.poll_feeds), in one
process only (FEED_POLLING, shard 0): fetching holds no lock, storing new items swaps in the new index
the way /reindex does, so answers never wait for it. New articles of a server's feeds are announced in
the feed's channel and in the server's /config announcements channel (once in each), a few per poll,
never pinging anyone.

A feed belongs to the server that added it: /feeds list and /feeds remove see only that server's feeds
(`verbatim feeds`, the operator's tool, sees all). The corpus the feeds fill is shared by every
server; a server limits what its answers quote with /config sources.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands, tasks

from bot.discord import formatting
from bot.discord.errors import NONE, log_error
from index.errors import ReindexInProgressError
from index.sources.corpus import Article
from index.sources.feed_poll import PollReport
from index.sources.feeds import Feed, open_registry

if TYPE_CHECKING:
    from bot.discord.client import VerbatimBot

log = logging.getLogger("verbatim.discord.feeds")

FEED_LIST_LIMIT = 20  # feeds shown by /feeds list, each a field of one embed (25 at most)


def announcement(feed: Feed, articles: list[Article], most: int) -> tuple[str, list[discord.Embed]]:
    """New articles of one feed as one message: an embed each (title, outlet, date, link) for the first
    `most`, and a line counting the rest."""
    outlet = formatting.escape(formatting.one_line(feed.outlet or articles[0].source or feed.url))
    shown = articles[:most]
    embeds = []
    for article in shown:
        embed = discord.Embed(title=formatting.truncate(formatting.escape(formatting.one_line(article.title)), 250),
                              colour=formatting.COLOUR)
        lines = [formatting.truncate(formatting.escape(formatting.outlet_line(article)), 300)]
        if article.url:  # a line of its own: Discord refuses an embed whose title link is not a valid URL
            lines.append(formatting.truncate(formatting.link_or_text(article.url), 1000))
        embed.description = "\n".join(line for line in lines if line)
        embeds.append(formatting.fit_embed(embed))
    rest = len(articles) - len(shown)
    content = f"New from {formatting.truncate(outlet, 200)}" + (f" (and {rest} more)" if rest else "") + ":"
    if not shown:
        content = f"{len(articles)} new articles from {formatting.truncate(outlet, 200)}."
    return content, embeds


def feed_list_embed(feeds: list[Feed]) -> discord.Embed:
    embed = discord.Embed(title="Followed feeds", colour=formatting.COLOUR)
    if not feeds:
        embed.description = "No feeds are followed. `/feeds add` follows one."
        return embed
    for feed in feeds[:FEED_LIST_LIMIT]:
        lines = [f"every {feed.every_minutes} min · {feed.items_added} added"
                 + (f" · announced in <#{feed.channel_id}>" if feed.channel_id else ""),
                 f"last success: {feed.last_success_at or 'never'}"]
        if feed.last_error:
            failing = f" ({feed.failures} failed in a row)" if feed.failing else ""
            lines.append(f"last error {feed.last_error_at}{failing}: "
                         + formatting.truncate(formatting.escape(formatting.one_line(feed.last_error)), 400))
        name = formatting.escape(formatting.one_line(feed.outlet or "")) or "(not polled yet)"
        embed.add_field(name=formatting.truncate(name, 200),
                        value=formatting.truncate(formatting.link_or_text(feed.url) + "\n" + "\n".join(lines), 1000),
                        inline=False)
    if len(feeds) > FEED_LIST_LIMIT:
        embed.set_footer(text=f"… and {len(feeds) - FEED_LIST_LIMIT} more; `verbatim feeds list` shows all.")
    return formatting.fit_embed(embed)


class Feeds(commands.Cog):
    feeds = app_commands.Group(
        name="feeds", description="Follow RSS and Atom feeds (Manage Server).", guild_only=True,
        default_permissions=discord.Permissions(manage_guild=True),
    )

    def __init__(self, bot: VerbatimBot) -> None:
        self.bot = bot
        # discord.py's loop: the first poll at start, then one every tick; feeds are polled when due.
        self.schedule = tasks.loop(seconds=bot.feed_poll_seconds)(self.poll_once)

    async def cog_load(self) -> None:
        if self.bot.polls_feeds:
            self.schedule.start()
        else:
            log.info("feeds are not polled by this process (FEED_POLLING=false, or shard 0 runs elsewhere)")

    async def cog_unload(self) -> None:
        self.schedule.cancel()

    # ------------------------------------------------------------ commands

    @feeds.command(name="add", description="Follow a feed; new articles are added and indexed.")
    @app_commands.describe(url="The feed's address (RSS or Atom), https://…",
                           every="Minutes between polls (default: the server's FEED_EVERY_MINUTES)",
                           channel="Where new articles are announced (optional)")
    @app_commands.checks.has_permissions(manage_guild=True)
    async def add(self, interaction: discord.Interaction, url: str,
                  every: app_commands.Range[int, 1, 10_080] | None = None,
                  channel: discord.TextChannel | None = None) -> None:
        await interaction.response.defer(thinking=True, ephemeral=True)
        minutes = every or self.bot.settings.feed_every_minutes
        feed, new = await asyncio.to_thread(self._add, url, minutes, channel.id if channel else None,
                                            interaction.guild_id)
        where = f" New articles will be announced in <#{feed.channel_id}>." if feed.channel_id else ""
        verb = "Following" if new else "Updated"
        await interaction.followup.send(
            f"{verb} {formatting.link_or_text(feed.url)}: polled every {feed.every_minutes} minutes.{where}",
            ephemeral=True, allowed_mentions=NONE)
        log.info("feed %s %s by user %s", feed.url, "added" if new else "updated", interaction.user.id)

    @feeds.command(name="list", description="The followed feeds and how each is doing.")
    @app_commands.checks.has_permissions(manage_guild=True)
    async def list_(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True, ephemeral=True)
        feeds = await asyncio.to_thread(self._feeds, interaction.guild_id)
        await interaction.followup.send(embed=feed_list_embed(feeds), ephemeral=True, allowed_mentions=NONE)

    @feeds.command(name="remove", description="Stop following a feed (its articles stay).")
    @app_commands.describe(url="The feed's address, as /feeds list shows it")
    @app_commands.checks.has_permissions(manage_guild=True)
    async def remove(self, interaction: discord.Interaction, url: str) -> None:
        await interaction.response.defer(thinking=True, ephemeral=True)
        feed = await asyncio.to_thread(self._remove, url, interaction.guild_id)
        await interaction.followup.send(
            f"No longer following {formatting.link_or_text(feed.url)}; its {feed.items_added} articles stay.",
            ephemeral=True, allowed_mentions=NONE)

    def _add(self, url: str, every: int, channel_id: int | None, guild_id: int | None) -> tuple[Feed, bool]:
        with open_registry(self.bot.settings.data_dir) as registry:
            return registry.add(url, every_minutes=every, channel_id=channel_id, guild_id=guild_id)

    def _feeds(self, guild_id: int | None) -> list[Feed]:
        with open_registry(self.bot.settings.data_dir) as registry:
            return registry.feeds(guild_id=guild_id)

    def _remove(self, url: str, guild_id: int | None) -> Feed:
        with open_registry(self.bot.settings.data_dir) as registry:
            return registry.remove(url, guild_id=guild_id)

    # ------------------------------------------------------------ polling

    async def poll_once(self) -> PollReport | None:
        """Poll the feeds that are due, then announce what was added. Never raises: the next poll retries."""
        try:
            report = await self.bot.in_background(self.bot.live.poll_feeds)
        except ReindexInProgressError:
            log.info("feeds not stored this time: a re-index is running; the next poll retries")
            return None
        except Exception as error:  # noqa: BLE001 - a failed poll must not end the schedule
            log_error(error, "feed poll")
            return None
        for result in report.results:
            if result.error:
                log.info("feed %s failed: %s", result.feed.url, result.error)
        if report.results:  # some feed was due and was asked (the schedule also wakes when none is)
            self.bot.health.feed_polled()
        if report.build is not None:
            self.bot.health.reindexed("feed")
            await asyncio.to_thread(self.bot.catalog.refresh, self.bot.live.current)
            await self.announce(report)
        return report

    def announced_in(self, feed: Feed) -> list[int]:
        """Where a feed's new articles go: its own channel, and its server's /config announcements channel
        (each once)."""
        server = self.bot.server_config(feed.guild_id).announcement_channel if feed.guild_id else None
        return list(dict.fromkeys(c for c in (feed.channel_id, server) if c))

    async def announce(self, report: PollReport) -> None:
        by_feed: dict[str, tuple[Feed, list[Article]]] = {}
        for feed, article in report.added:
            by_feed.setdefault(feed.url, (feed, []))[1].append(article)
        by_channel: dict[int, list[tuple[Feed, list[Article]]]] = defaultdict(list)
        for feed, articles in by_feed.values():
            for channel_id in self.announced_in(feed):
                by_channel[channel_id].append((feed, articles))
        for channel_id, batches in by_channel.items():
            channel = self.bot.get_channel(channel_id)
            if channel is None:  # not cached (a channel id given on the command line, say): ask Discord
                try:
                    channel = await self.bot.fetch_channel(channel_id)
                except discord.HTTPException as error:
                    log.warning("feed announcements: channel %s cannot be reached: %s", channel_id, error)
                    continue
            if not isinstance(channel, discord.abc.Messageable):
                log.warning("feed announcements: channel %s is not one I can post in", channel_id)
                continue
            for feed, articles in batches:
                content, embeds = announcement(feed, articles, self.bot.settings.feed_announce_max)
                try:
                    await channel.send(content, embeds=embeds, allowed_mentions=NONE)
                except discord.HTTPException as error:
                    log.warning("could not announce new articles of %s in %s: %s", feed.url, channel_id, error)
