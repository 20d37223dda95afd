"""Looking at what the bot knows: /sources (paginated), /source (one article), /search (paginated)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord import formatting
from bot.discord.errors import NONE, UnknownSourceError
from bot.discord.views import ExpiringView

if TYPE_CHECKING:
    from bot.discord.client import VerbatimBot

SEARCH_RESULTS = 12  # three pages of four: enough to browse, few enough to read


class Pages(ExpiringView):
    """Previous/next buttons over a list of embeds; only the member who ran the command turns pages."""

    what = "page button"

    def __init__(self, pages: list[discord.Embed], owner_id: int) -> None:
        super().__init__()
        self.pages = pages
        self.owner_id = owner_id
        self.index = 0
        self._sync_buttons()

    def _sync_buttons(self) -> None:
        self.previous.disabled = self.index == 0
        self.next.disabled = self.index >= len(self.pages) - 1

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.user.id == self.owner_id:
            return True
        await interaction.response.send_message(
            "These pages belong to whoever ran the command: run it yourself to browse.",
            ephemeral=True,
            allowed_mentions=NONE,
        )
        return False

    async def _show(self, interaction: discord.Interaction, index: int) -> None:
        self.index = max(0, min(index, len(self.pages) - 1))
        self._sync_buttons()
        await interaction.response.edit_message(embed=self.pages[self.index], view=self, allowed_mentions=NONE)

    @discord.ui.button(label="Previous", style=discord.ButtonStyle.secondary, emoji="◀️")
    async def previous(self, interaction: discord.Interaction, _button: discord.ui.Button) -> None:
        await self._show(interaction, self.index - 1)

    @discord.ui.button(label="Next", style=discord.ButtonStyle.secondary, emoji="▶️")
    async def next(self, interaction: discord.Interaction, _button: discord.ui.Button) -> None:
        await self._show(interaction, self.index + 1)


async def send_pages(interaction: discord.Interaction, pages: list[discord.Embed]) -> None:
    """Send the first page, with buttons only when there is more than one."""
    if len(pages) == 1:
        await interaction.followup.send(embed=pages[0], allowed_mentions=NONE)
        return
    view = Pages(pages, interaction.user.id)
    view.message = await interaction.followup.send(embed=pages[0], view=view, allowed_mentions=NONE, wait=True)


class Sources(commands.Cog):
    def __init__(self, bot: VerbatimBot) -> None:
        self.bot = bot

    @app_commands.command(name="sources", description="List the articles the bot can quote.")
    async def sources(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True)
        engine = self.bot.live.current
        scope = await asyncio.to_thread(self.bot.scope, engine, interaction.guild_id)
        documents = await asyncio.to_thread(engine.sources)
        # A server that chose its sources (/config sources) sees those; the corpus itself is shared.
        title = "Indexed sources" if scope.allowed is None else "Sources this server uses"
        await send_pages(interaction, formatting.sources_pages([d for d in documents if scope.admits(d.doc_id)],
                                                               title))

    @app_commands.command(name="source", description="Show one article: outlet, date, link and how it opens.")
    @app_commands.describe(id="The article's id or title (pick from the list)")
    async def source(self, interaction: discord.Interaction, id: str) -> None:
        await interaction.response.defer(thinking=True)
        engine = self.bot.live.current
        scope = await asyncio.to_thread(self.bot.scope, engine, interaction.guild_id)
        entry = self.bot.catalog.resolve(id)
        doc = await asyncio.to_thread(engine.source, entry.doc_id if entry else id.strip())
        if doc is None or not scope.admits(doc.doc_id):
            raise UnknownSourceError(id)
        await interaction.followup.send(embed=formatting.source_card(doc), allowed_mentions=NONE)

    @source.autocomplete("id")
    async def source_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return self.bot.catalog.choices(current, self.bot.catalog_allowed(interaction.guild_id))

    @app_commands.command(name="search", description="Show the passages that best match a query, with scores.")
    @app_commands.describe(query="Words or a question to look for")
    async def search(self, interaction: discord.Interaction, query: str) -> None:
        await interaction.response.defer(thinking=True)
        engine = self.bot.live.current
        scope = await asyncio.to_thread(self.bot.scope, engine, interaction.guild_id)
        hits = await asyncio.to_thread(engine.search, query, k=SEARCH_RESULTS, allowed_doc_ids=scope.allowed)
        await send_pages(interaction, formatting.search_pages(query, hits))
