"""The buttons under every answer (📜 Show quotes, 👍, 👎 with an optional reason) and `/feedback`.

The buttons are persistent: their custom ids carry the answer's id and discord.py routes any click on
them by pattern (`DynamicItem`), so they keep working after a restart; what they need (the quotes,
the vote) is read from and written to the data folder's database (index/feedback.py).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord import formatting
from bot.discord.errors import NONE, UNEXPECTED, log_error, user_message
from index.feedback import REASON_MAX_CHARS, AnswerTooOldError, Vote

if TYPE_CHECKING:
    from bot.discord.client import VerbatimBot

log = logging.getLogger("verbatim.discord.feedback")

# An answer id is 16 hex digits (index/feedback.py); custom ids are at most 100 characters.
QUOTES_ID = r"verbatim:quotes:(?P<answer_id>[0-9a-f]{16})"
VOTE_ID = r"verbatim:vote:(?P<vote>up|down):(?P<answer_id>[0-9a-f]{16})"
QUOTES_GONE = "This answer is too old: its quotes are no longer kept. Ask the question again to see them."
THANKS = {"up": "Thanks: your 👍 is recorded.", "down": "Thanks: your 👎 is recorded."}
LATEST_REASONS = 5


def _bot(interaction: discord.Interaction) -> VerbatimBot:
    return interaction.client  # type: ignore[return-value]


async def _tell(interaction: discord.Interaction, text: str) -> None:
    """A private line to whoever clicked, whether or not the interaction was answered yet."""
    if interaction.response.is_done():
        await interaction.followup.send(text, ephemeral=True, allowed_mentions=NONE)
    else:
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NONE)


async def _report(interaction: discord.Interaction, error: Exception, what: str) -> None:
    log_error(error, f"{what} by user {interaction.user.id}")
    try:
        await _tell(interaction, user_message(error) or UNEXPECTED)
    except discord.HTTPException:  # the interaction expired: the log has it
        pass


class QuotesButton(discord.ui.DynamicItem[discord.ui.Button], template=QUOTES_ID):
    """📜 Show quotes: the exact sentences an answer quoted, shown only to whoever clicks."""

    def __init__(self, answer_id: str) -> None:
        super().__init__(discord.ui.Button(label="Show quotes", style=discord.ButtonStyle.secondary, emoji="📜",
                                           custom_id=f"verbatim:quotes:{answer_id}"))
        self.answer_id = answer_id

    @classmethod
    async def from_custom_id(cls, _interaction: discord.Interaction, _item: discord.ui.Item[Any],
                             match: Any, /) -> QuotesButton:
        return cls(match["answer_id"])

    async def callback(self, interaction: discord.Interaction) -> None:
        try:
            await interaction.response.defer(ephemeral=True, thinking=True)
            recorded = await asyncio.to_thread(_bot(interaction).feedback.answer, self.answer_id)
            if recorded is None:
                await _tell(interaction, QUOTES_GONE)
                return
            for embeds in formatting.quotes_messages(recorded):
                await interaction.followup.send(embeds=embeds, ephemeral=True, allowed_mentions=NONE)
        except Exception as error:  # a button must never fail silently
            await _report(interaction, error, "quotes button")


class VoteButton(discord.ui.DynamicItem[discord.ui.Button], template=VOTE_ID):
    """👍 or 👎 on an answer. One vote per reader, changed by clicking the other; 👎 asks for a reason."""

    def __init__(self, answer_id: str, vote: Vote) -> None:
        super().__init__(discord.ui.Button(
            emoji="👍" if vote == "up" else "👎", style=discord.ButtonStyle.secondary,
            custom_id=f"verbatim:vote:{vote}:{answer_id}",
        ))
        self.answer_id = answer_id
        self.vote: Vote = vote

    @classmethod
    async def from_custom_id(cls, _interaction: discord.Interaction, _item: discord.ui.Item[Any],
                             match: Any, /) -> VoteButton:
        return cls(match["answer_id"], match["vote"])

    async def callback(self, interaction: discord.Interaction) -> None:
        store = _bot(interaction).feedback
        try:
            if self.vote == "down":
                await self._down(interaction)
                return
            await interaction.response.defer(ephemeral=True, thinking=True)
            await asyncio.to_thread(store.vote, self.answer_id, interaction.user.id, "up")
            await _tell(interaction, THANKS["up"])
        except Exception as error:
            await _report(interaction, error, f"{self.vote} vote")

    async def _down(self, interaction: discord.Interaction) -> None:
        # The form must be the first response, within Discord's 3 seconds, and the database may wait on
        # a lock: open it first, then count the 👎 at once (the reason is optional, and a reader may
        # close the form). Submitting the form records the same vote again, with its reason.
        await interaction.response.send_modal(ReasonModal(self.answer_id))
        try:
            await asyncio.to_thread(_bot(interaction).feedback.vote, self.answer_id, interaction.user.id, "down")
        except AnswerTooOldError:
            pass  # nothing to count; submitting the form tells the reader


class ReasonModal(discord.ui.Modal, title="What was wrong with this answer?"):
    reason: discord.ui.TextInput[ReasonModal] = discord.ui.TextInput(
        label="Reason (optional)", custom_id="reason", style=discord.TextStyle.paragraph, required=False,
        max_length=REASON_MAX_CHARS, placeholder="e.g. it quotes an older figure; the question was about …",
    )

    def __init__(self, answer_id: str) -> None:
        super().__init__(timeout=600, custom_id=f"verbatim:reason:{answer_id}")
        self.answer_id = answer_id

    async def on_submit(self, interaction: discord.Interaction) -> None:
        try:
            await interaction.response.defer(ephemeral=True, thinking=True)
            reason = self.reason.value or None
            await asyncio.to_thread(_bot(interaction).feedback.vote, self.answer_id, interaction.user.id, "down",
                                    reason=reason)
            await _tell(interaction, THANKS["down"] + (" The reason helps us fix it." if reason else ""))
        except Exception as error:  # an answer past its retention, say: told to the reader, like the buttons
            await _report(interaction, error, "feedback reason")

    async def on_error(self, interaction: discord.Interaction, error: Exception, /) -> None:  # type: ignore[override]
        await _report(interaction, error, "feedback reason")


async def answer_buttons(bot: VerbatimBot, answer: Any, *, guild_id: int | None,
                         channel_id: int | None) -> discord.ui.View:
    """Record a posted answer and return its buttons (📜 only when it quotes something)."""
    answer_id = await asyncio.to_thread(bot.feedback.record_answer, answer, guild_id=guild_id, channel_id=channel_id)
    view = discord.ui.View(timeout=None)
    if answer.citations:
        view.add_item(QuotesButton(answer_id))
    view.add_item(VoteButton(answer_id, "up"))
    view.add_item(VoteButton(answer_id, "down"))
    # Clicks are routed by custom id (add_dynamic_items in client.py), not by this view: stopped, it is
    # only a list of buttons to send, and discord.py keeps nothing of it for the message.
    view.stop()
    return view


def _shown(text: str, limit: int) -> str:
    """Text a reader typed (or a question), on one line, escaped and cut."""
    return formatting.truncate(formatting.escape(formatting.one_line(text)), limit)


def summary_embed(summary: Any) -> discord.Embed:
    total = summary.up + summary.down
    embed = discord.Embed(title="Feedback on this server's answers", colour=formatting.COLOUR)
    rated = f"{summary.answers_rated} answer{'' if summary.answers_rated == 1 else 's'} rated"
    embed.description = (f"👍 {summary.up}  ·  👎 {summary.down}  ·  {rated}"
                         if total else "No votes yet. Readers rate answers with the 👍 and 👎 buttons under them.")
    lines = [
        f"<t:{int(datetime.fromisoformat(at).timestamp())}:R> **{_shown(question, 120)}**\n> {_shown(reason, 300)}"
        for at, question, reason in summary.latest_reasons
    ]
    if lines:
        embed.add_field(name="Latest 👎 reasons", value=formatting.truncate("\n".join(lines), 1024), inline=False)
    embed.set_footer(text="verbatim feedback --json exports every vote with its question, answer and citations")
    return embed


class Feedback(commands.Cog):
    def __init__(self, bot: VerbatimBot) -> None:
        self.bot = bot

    @app_commands.command(name="feedback", description="How readers rated this server's answers (Manage Server).")
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.checks.has_permissions(manage_guild=True)
    async def feedback(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True, ephemeral=True)
        summary = await asyncio.to_thread(self.bot.feedback.summary, interaction.guild_id, latest=LATEST_REASONS)
        await interaction.followup.send(embed=summary_embed(summary), ephemeral=True, allowed_mentions=NONE)
