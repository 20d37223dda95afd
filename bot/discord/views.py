"""What every button view of the bot shares: it removes its buttons when it expires, and its errors
are logged and told to the clicker the same way as a command's."""

from __future__ import annotations

from typing import Any

import discord

from bot.discord.errors import NONE, UNEXPECTED, count_error, log_error

# Buttons work while the bot remembers the view; 10 minutes stays inside the 15 minutes for which
# an interaction's token can still edit the message to remove them.
VIEW_TIMEOUT = 600


class ExpiringView(discord.ui.View):
    what = "button"  # for the log: which kind of button failed

    def __init__(self) -> None:
        super().__init__(timeout=VIEW_TIMEOUT)
        self.message: discord.Message | discord.WebhookMessage | None = None

    async def on_timeout(self) -> None:
        if self.message is None:
            return
        try:
            await self.message.edit(view=None)
        except discord.HTTPException:  # deleted, or the token expired: nothing left to tidy
            pass

    async def on_error(self, interaction: discord.Interaction, error: Exception, _item: Any) -> None:
        log_error(error, f"{self.what} for user {interaction.user.id}")
        count_error(interaction.client, error)
        if not interaction.response.is_done():
            await interaction.response.send_message(UNEXPECTED, ephemeral=True, allowed_mentions=NONE)
