"""One place that turns any error into a log line and a useful message for the user.

Slash commands reach it through the command tree (`VerbatimTree.on_error`); mentions, buttons and
other events call `user_message` and `log_error` themselves, so the wording is the same everywhere.
"""

from __future__ import annotations

import logging
import math

import discord
from discord import app_commands

from bot.discord.formatting import escape
from index.errors import VerbatimError

log = logging.getLogger("verbatim.discord")

NONE = discord.AllowedMentions.none()

UNEXPECTED = "Something went wrong on my side; it has been logged. Please try again in a moment."


class StartupError(VerbatimError):
    """The bot cannot start; str() says what to do, in one line."""


class UnknownSourceError(VerbatimError):
    """A `source` or `id` option that names no indexed article."""

    def __init__(self, source: str) -> None:
        shown = " ".join(source.split())[:80]
        super().__init__(f"I have no article {shown!r}. Pick one from the list as you type, or see /sources.")


def unwrap(error: BaseException) -> BaseException:
    """The error a command raised, without discord.py's CommandInvokeError wrapper."""
    while isinstance(error, app_commands.CommandInvokeError) and error.original is not None:
        error = error.original
    return error


def user_message(error: BaseException) -> str | None:
    """What to tell the user about an expected error, or None when the error is a bug.

    Errors often repeat what the user typed (an id, an address): that text is shown, never rendered.
    """
    error = unwrap(error)
    if isinstance(error, VerbatimError):
        return escape(str(error))  # the engine's errors already say what happened and what to do
    if isinstance(error, app_commands.CommandOnCooldown):
        return budget_message(error.cooldown.rate, error.cooldown.per, error.retry_after)
    if isinstance(error, app_commands.MissingPermissions):
        needed = ", ".join(p.replace("_", " ").replace("guild", "server").title() for p in error.missing_permissions)
        return f"This command needs the {needed} permission."
    if isinstance(error, app_commands.NoPrivateMessage):
        return "This command only works in a server."
    if isinstance(error, app_commands.CheckFailure):
        return "You can't use this command here."
    if isinstance(error, app_commands.TransformerError):
        return f"I couldn't use the value {escape(repr(error.value))}: check the option and try again."
    return None


def budget_message(questions: int, window_seconds: float, retry_after: float) -> str:
    """Why a question is refused, and when the next one is possible as a Discord timestamp (shown as
    "in 42 seconds" in each reader's client, and kept up to date there)."""
    window = "minute" if window_seconds == 60 else _duration(window_seconds)
    at = math.ceil(discord.utils.utcnow().timestamp() + retry_after)
    return (f"You have asked {questions} questions in the last {window}, as many as I take from one person: "
            f"you can ask again <t:{at}:R>.")


def _duration(seconds: float) -> str:
    if seconds % 3600 == 0:
        return "hour" if seconds == 3600 else f"{seconds / 3600:g} hours"
    if seconds % 60 == 0:
        return f"{seconds / 60:g} minutes"
    return f"{seconds:g} seconds"


def log_error(error: BaseException, where: str) -> None:
    """Expected errors are routine (INFO); anything else is a bug and is logged with its traceback."""
    if user_message(error) is not None:
        log.info("%s: %s", where, unwrap(error))
    else:
        log.error("%s failed", where, exc_info=unwrap(error))


def count_error(client: discord.Client, error: BaseException) -> None:
    """Count a failure in the bot's metrics (`health`, see bot/health.py)."""
    health = getattr(client, "health", None)
    if health is not None:
        health.failed(error)


class VerbatimTree(app_commands.CommandTree):
    """The command tree with the bot's single error handler for every application command."""

    async def on_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError, /) -> None:
        name = interaction.command.qualified_name if interaction.command else "command"
        log_error(error, f"/{name} by user {interaction.user.id}")
        count_error(interaction.client, error)
        text = user_message(error) or UNEXPECTED
        try:
            if interaction.response.is_done():
                await interaction.followup.send(text, ephemeral=True, allowed_mentions=NONE)
            else:
                await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NONE)
        except discord.HTTPException as exc:  # the interaction may have expired; the log still has it
            log.warning("could not tell the user about the error in /%s: %s", name, exc)
