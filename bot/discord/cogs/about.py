"""/about: what the bot is answering from."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord import formatting
from bot.discord.errors import NONE

if TYPE_CHECKING:
    from bot.discord.client import VerbatimBot


class About(commands.Cog):
    def __init__(self, bot: VerbatimBot) -> None:
        self.bot = bot

    @app_commands.command(name="about", description="Corpus size, model, when the index was built, version.")
    async def about(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True)
        info = await asyncio.to_thread(self.bot.live.current.info)
        await interaction.followup.send(embed=formatting.about_embed(info), allowed_mentions=NONE)
