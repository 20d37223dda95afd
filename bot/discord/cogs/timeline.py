"""/timeline topic: the dated events about a topic, oldest first, each a quoted sentence with its source."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord import formatting
from bot.discord.cogs.ask import question_budget
from bot.discord.errors import NONE
from index.answers.timeline import TimelineEvent

if TYPE_CHECKING:
    from bot.discord.client import VerbatimBot

TIMELINE_EVENTS = 12  # a screenful: the events most about the topic, then put in date order


def timeline_messages(topic: str, events: Sequence[TimelineEvent], scope: str) -> list[list[discord.Embed]]:
    """One block per event: its date in bold, the quote, and where it comes from (title linked, outlet, date)."""
    blocks = []
    for event in events:
        quote = formatting.escape(formatting.one_line(event.quote))
        source = formatting.citation_line(event.citation).split(" ", 1)[1]
        blocks.append(f"**{event.date}** “{quote}”\n— {source}")
    body = "\n\n".join(blocks) or "No dated passage about that was found in the sources."
    return formatting.pack(f"Timeline: {formatting.escape(formatting.one_line(topic))}", body,
                           footer=f"{len(events)} dated events, oldest first · searched {scope}")


class Timeline(commands.Cog):
    def __init__(self, bot: VerbatimBot) -> None:
        self.bot = bot

    @app_commands.command(name="timeline", description="Dated events about a topic, oldest first, each quoted.")
    @app_commands.describe(topic="What the timeline is about, e.g. the floods")
    @app_commands.check(question_budget)
    async def timeline(self, interaction: discord.Interaction, topic: str) -> None:
        # Private on a server whose answers are (`/config visibility`): the deferral decides it for the reply.
        private = self.bot.answers_privately(interaction.guild_id)
        await interaction.response.defer(thinking=True, ephemeral=private)
        self.bot.health.asked("timeline")
        engine = self.bot.live.current
        # The server's chosen sources (/config sources) bound a timeline as they bound answers.
        scope = await asyncio.to_thread(self.bot.scope, engine, interaction.guild_id)
        events = await asyncio.to_thread(engine.timeline, topic, limit=TIMELINE_EVENTS, allowed_doc_ids=scope.allowed)
        for embeds in timeline_messages(topic, events, scope.words):
            await interaction.followup.send(embeds=embeds, allowed_mentions=NONE, ephemeral=private)
