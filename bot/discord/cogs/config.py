"""`/config`: a server's own settings over the environment's defaults (Manage Server only).

Every subcommand but `show` changes one setting; `reset` returns one (or all) to the environment's
value. The values live in the data folder's database (index/server_settings.py).
"""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING, Any, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord import formatting
from bot.discord.errors import NONE
from index.server_settings import KEYS, ServerConfig, ServerSettingError

if TYPE_CHECKING:
    from bot.discord.client import VerbatimBot

_CHANNEL = re.compile(r"<#(\d+)>|\b(\d{15,21})\b")

LABELS = {
    "answer_channels": "Answer channels (mentions)",
    "visibility": "Answer visibility (/ask)",
    "question_budget": "Question budget",
    "sources": "Sources",
    "announcement_channel": "Feeds announcement channel",
    "forum_tag": "Forum tag",
}


def _channels(ids: tuple[int, ...] | list[int]) -> str:
    return ", ".join(f"<#{c}>" for c in ids)


def describe(key: str, config: ServerConfig) -> str:
    """One setting's effective value, as `/config show` prints it."""
    if key == "answer_channels":
        return _channels(config.answer_channels) if config.answer_channels else "every channel"
    if key == "visibility":
        return ("only the asker sees /ask answers" if config.visibility == "ephemeral"
                else "/ask answers are posted for everyone")
    if key == "question_budget":
        budget = config.question_budget
        return ("no limit" if budget.burst == 0
                else f"{budget.burst} questions per member every {budget.window_seconds:g} seconds")
    if key == "sources":
        return (", ".join(formatting.code(s) for s in config.sources) if config.sources
                else "every indexed article")
    if key == "announcement_channel":
        return f"<#{config.announcement_channel}>" if config.announcement_channel else "none"
    if key == "forum_tag":
        return (f"posts tagged “{formatting.escape(config.forum_tag)}” get an answer" if config.forum_tag
                else "none: forum posts are left alone")
    raise KeyError(key)


def config_embed(config: ServerConfig, guild_name: str) -> discord.Embed:
    embed = discord.Embed(title=f"Verbatim settings for {formatting.escape(formatting.one_line(guild_name))}",
                          colour=formatting.COLOUR)
    for key in KEYS:
        origin = "default (environment)" if config.from_environment(key) else "set for this server"
        embed.add_field(name=f"{LABELS[key]} · {origin}",
                        value=formatting.truncate(describe(key, config), formatting.FIELD_VALUE), inline=False)
    embed.set_footer(text="Change one with /config <setting>; /config reset puts it back to the default.")
    return formatting.fit_embed(embed)


def _server(interaction: discord.Interaction) -> discord.Guild:
    if interaction.guild is None:  # the group is guild_only; this is for the type checker's sake
        raise app_commands.NoPrivateMessage()
    return interaction.guild


def _guild(interaction: discord.Interaction) -> int:
    return _server(interaction).id


def channel_ids(text: str, guild: discord.Guild) -> list[int]:
    """The channels named in `text` (#mentions or ids), each checked to be one of this server's."""
    ids = [int(a or b) for a, b in _CHANNEL.findall(text or "")]
    if not ids:
        raise ServerSettingError("Name the channels by mentioning them (type # and pick each), or use /config reset.")
    for channel_id in ids:
        if guild.get_channel_or_thread(channel_id) is None:
            raise ServerSettingError(f"<#{channel_id}> is not a channel of this server that I can see.")
    return ids


class ConfigGroup(app_commands.Group, name="config", description="This server's Verbatim settings (Manage Server).",
                  guild_only=True, default_permissions=discord.Permissions(manage_guild=True)):
    """Hidden from members without Manage Server by `default_permissions`; refused to them at run time by
    `interaction_check`, for servers that show the command to others anyway."""

    def __init__(self, bot: VerbatimBot) -> None:
        super().__init__()
        self.bot = bot

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        permissions = interaction.permissions
        if not permissions.manage_guild:
            raise app_commands.MissingPermissions(["manage_guild"])
        return True

    async def _reply(self, interaction: discord.Interaction, change: Any = None, done: str = "") -> None:
        """Defer, apply `change` off the event loop, then show the server's settings as they now are."""
        await interaction.response.defer(thinking=True, ephemeral=True)
        if change is not None:
            await asyncio.to_thread(change)
        guild = _server(interaction)
        await interaction.followup.send(done or discord.utils.MISSING,
                                        embed=config_embed(self.bot.server_config(guild.id), guild.name),
                                        ephemeral=True, allowed_mentions=NONE)

    @app_commands.command(name="show", description="This server's effective settings, and which are defaults.")
    async def show(self, interaction: discord.Interaction) -> None:
        await self._reply(interaction)

    @app_commands.command(name="channels", description="Answer mentions only in these channels (and their threads).")
    @app_commands.describe(channels="The channels, e.g. #news #questions")
    async def channels(self, interaction: discord.Interaction, channels: str) -> None:
        ids = channel_ids(channels, _server(interaction))
        await self._reply(interaction, lambda: self.bot.servers.set_answer_channels(_guild(interaction), ids),
                          f"Mentions are now answered in {_channels(ids)}.")

    @app_commands.command(name="visibility", description="Whether /ask answers are public or seen only by the asker.")
    async def visibility(self, interaction: discord.Interaction, value: Literal["public", "ephemeral"]) -> None:
        await self._reply(interaction, lambda: self.bot.servers.set_visibility(_guild(interaction), value),
                          "Answers to /ask are now " + ("seen only by the asker." if value == "ephemeral"
                                                        else "posted for everyone."))

    @app_commands.command(name="budget", description="How many questions a member may ask per time window.")
    @app_commands.describe(questions="Questions per member per window (0: no limit)",
                           window_seconds="The window, in seconds")
    async def budget(self, interaction: discord.Interaction, questions: app_commands.Range[int, 0, 1000],
                     window_seconds: app_commands.Range[int, 1, 86_400] = 60) -> None:
        await self._reply(
            interaction, lambda: self.bot.servers.set_question_budget(_guild(interaction), questions, window_seconds),
            f"Each member may now ask {questions} questions every {window_seconds} seconds."
            if questions else "Members may now ask without limit.")

    @app_commands.command(name="sources", description="Answer only from these articles or outlets.")
    @app_commands.describe(sources="Article ids or outlet names, separated by commas (see /sources)")
    async def sources(self, interaction: discord.Interaction, sources: str) -> None:
        names = [part for part in sources.split(",") if part.strip()]
        engine = self.bot.live.current
        await self._reply(
            interaction, lambda: self.bot.servers.set_sources(_guild(interaction), names, engine.sources()),
            "Answers on this server now quote only these sources.")

    @app_commands.command(name="announcements", description="Where new articles from this server's feeds are "
                                                            "announced.")
    async def announcements(self, interaction: discord.Interaction, channel: discord.TextChannel) -> None:
        await self._reply(
            interaction, lambda: self.bot.servers.set_announcement_channel(_guild(interaction), channel.id),
            f"New articles from this server's feeds (/feeds add) will be announced in <#{channel.id}>.")

    @app_commands.command(name="forum-tag", description="Forum posts with this tag get an answer.")
    @app_commands.describe(tag="The forum tag's name, e.g. question")
    async def forum_tag(self, interaction: discord.Interaction, tag: str) -> None:
        await self._reply(interaction, lambda: self.bot.servers.set_forum_tag(_guild(interaction), tag),
                          f"Forum posts tagged “{formatting.escape(' '.join(tag.split()))[:40]}” will get an answer.")

    @app_commands.command(name="reset", description="Put one setting, or all, back to the environment's default.")
    @app_commands.choices(setting=[app_commands.Choice(name=LABELS[k], value=k) for k in KEYS]
                          + [app_commands.Choice(name="All settings", value="all")])
    async def reset(self, interaction: discord.Interaction, setting: str) -> None:
        key = None if setting == "all" else setting
        await self._reply(interaction, lambda: self.bot.servers.reset(_guild(interaction), key),
                          f"{LABELS[key]}: back to the default." if key else "Every setting is back to its default.")


class Config(commands.Cog):
    def __init__(self, bot: VerbatimBot) -> None:
        self.bot = bot
        self.group = ConfigGroup(bot)

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.group)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.group.name)
