"""Checking a claim: the "Check with sources" message menu and /check.

The engine (Engine.check) finds the source sentences that support or contradict the claim; this cog
only lays them out, each quoted and cited, or says the sources don't address the claim. Quotes and
the claim are the words of others: escaped, and never allowed to ping (NONE).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord import formatting
from bot.discord.cogs.ask import question_budget, strip_mentions
from bot.discord.errors import NONE

if TYPE_CHECKING:
    from bot.discord.client import VerbatimBot

MENU_NAME = "Check with sources"
CHECK_FOOTER_PREFIX = "Checked against "
NOTHING_TO_CHECK = "That message has no text to check. Pick a message that states something."

VERDICT_COLOURS = {
    "supported": discord.Colour.from_rgb(46, 160, 67),
    "contradicted": discord.Colour.from_rgb(207, 34, 46),
    "mixed": discord.Colour.from_rgb(191, 135, 0),
    "outdated": discord.Colour.from_rgb(191, 135, 0),
    "not addressed": formatting.DECLINED_COLOUR,
}
STANCE_LABELS = {"supports": "✅ Supports", "contradicts": "❌ Contradicts",
                 "earlier report": "🕒 Earlier report", "later report": "🕒 Later report"}


def claim_words(text: str) -> str:
    """Typed text as a claim: mentions and Discord markup (**bold**, `code`) are not part of what it says."""
    return strip_mentions(discord.utils.remove_markdown(text or ""))


def check_messages(checked: Any, scope: str) -> list[list[discord.Embed]]:
    """A checked claim as embeds: the verdict, then each quoted sentence with its stance and why, the
    sources linked, and a footer saying what was searched."""
    lines = [f"**{formatting.escape(checked.verdict.capitalize())}.** {formatting.escape(checked.summary)}"]
    for judged in checked.sentences:
        citation = judged.citation
        lines.append(f"**{STANCE_LABELS[judged.stance]} [{citation.n}]** "
                     f"({formatting.escape(formatting.one_line(judged.reason))})\n"
                     f"“{formatting.escape(formatting.one_line(citation.quote))}”")
    if checked.note:
        lines.append(f"*{formatting.escape(formatting.one_line(checked.note))}*")
    fields = [formatting.Field("Sources" if i == 0 else "Sources" + formatting.CONTINUED, value)
              for i, value in enumerate(_source_values([s.citation for s in checked.sentences]))]
    total = (checked.timings_ms or {}).get("total")
    took = f" · {total:.0f} ms" if isinstance(total, (int, float)) else ""
    return formatting.pack(
        "Claim: " + formatting.escape(formatting.one_line(checked.claim)),
        "\n\n".join(lines),
        fields,
        f"{CHECK_FOOTER_PREFIX}{scope}{took}",
        colour=VERDICT_COLOURS.get(checked.verdict, formatting.COLOUR),
    )


def _source_values(citations: list[Any]) -> list[str]:
    values: list[str] = []
    current: list[str] = []
    for line in (formatting.truncate(formatting.citation_line(c), formatting.FIELD_VALUE) for c in citations):
        if current and len("\n".join([*current, line])) > formatting.FIELD_VALUE:
            values.append("\n".join(current))
            current = []
        current.append(line)
    if current:
        values.append("\n".join(current))
    return values


class Check(commands.Cog):
    def __init__(self, bot: VerbatimBot) -> None:
        self.bot = bot
        # Context menus cannot be declared inside a cog like slash commands; they are added to the tree.
        self.menu = app_commands.ContextMenu(name=MENU_NAME, callback=self.check_message)
        self.menu.add_check(question_budget)

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.menu)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)

    @app_commands.command(name="check", description="Check a claim: quotes from the sources that support or "
                                                    "contradict it.")
    @app_commands.describe(claim="The claim to check, e.g. “Only 50 civilians were killed”")
    @app_commands.check(question_budget)
    async def check(self, interaction: discord.Interaction, claim: str) -> None:
        await self._reply(interaction, claim_words(claim))

    async def check_message(self, interaction: discord.Interaction, message: discord.Message) -> None:
        claim = claim_words(message.content)
        if not claim:
            await interaction.response.send_message(NOTHING_TO_CHECK, ephemeral=True, allowed_mentions=NONE)
            return
        await self._reply(interaction, claim)

    async def _reply(self, interaction: discord.Interaction, claim: str) -> None:
        # Private on a server whose answers are (`/config visibility`): the deferral decides it for the reply.
        private = self.bot.answers_privately(interaction.guild_id)
        await interaction.response.defer(thinking=True, ephemeral=private)
        self.bot.health.asked("check")
        engine = self.bot.live.current  # one engine for the whole command, even if a re-index swaps it
        # The server's chosen sources (/config sources) bound claims as they bound answers.
        scope = await asyncio.to_thread(self.bot.scope, engine, interaction.guild_id)
        checked = await asyncio.to_thread(engine.check, claim, allowed_doc_ids=scope.allowed)
        for embeds in check_messages(checked, scope.words):
            await interaction.followup.send(embeds=embeds, allowed_mentions=NONE, wait=True, ephemeral=private)
