"""Questions: /ask, messages that mention the bot, and replies to its answers (follow-ups)."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord import formatting
from bot.discord.errors import NONE, UNEXPECTED, UnknownSourceError, log_error, user_message
from bot.discord.views import ExpiringView

if TYPE_CHECKING:
    from bot.discord.client import VerbatimBot
    from index.engine import Engine

log = logging.getLogger("verbatim.discord.ask")

class QuotesView(ExpiringView):
    """The "Show quotes" button under an answer: the quoted sentences, shown only to whoever clicks."""

    what = "quotes button"

    def __init__(self, answer: Any) -> None:
        super().__init__()
        self.answer = answer

    @discord.ui.button(label="Show quotes", style=discord.ButtonStyle.secondary, emoji="📜")
    async def show_quotes(self, interaction: discord.Interaction, _button: discord.ui.Button) -> None:
        messages = formatting.quotes_messages(self.answer)
        await interaction.response.send_message(embeds=messages[0], ephemeral=True, allowed_mentions=NONE)
        for embeds in messages[1:]:
            await interaction.followup.send(embeds=embeds, ephemeral=True, allowed_mentions=NONE)


# Discord mention markup (<@user>, <@&role>, <#channel>) and @everyone/@here mean nothing to the engine
# and only blur retrieval; they are removed from questions (they could never ping anyway: see NONE).
_MENTION = re.compile(r"<(?:@[!&]?|#)\d+>|(?<![\w.])@(?:everyone|here)\b")


def strip_mentions(text: str) -> str:
    return " ".join(_MENTION.sub(" ", text or "").split())


async def post_answer(
    answer: Any, scope: str, send: Callable[[bool, dict[str, Any]], Awaitable[discord.Message | None]],
    engine: Engine,
) -> None:
    """Send an answer as one or more messages; `send(first, kwargs)` posts one, the "Show quotes" button
    goes under the last. Each source names the other outlets that reported its story (`engine`)."""
    also = (await asyncio.to_thread(engine.also_reported, [c.doc_id for c in answer.citations])
            if answer.citations else {})
    messages = formatting.answer_messages(answer, scope=scope, also_reported=also)
    view = QuotesView(answer) if answer.citations else None
    for number, embeds in enumerate(messages, start=1):
        last = number == len(messages)
        kwargs: dict[str, Any] = {"embeds": embeds, "allowed_mentions": NONE}
        if last and view:
            kwargs["view"] = view
        sent = await send(number == 1, kwargs)
        if last and view:
            view.message = sent


def question_budget(interaction: discord.Interaction) -> bool:
    """App-command check: the user's question budget (`ask_burst` per `ask_window_seconds`)."""
    budget = interaction.client.question_budget  # type: ignore[attr-defined]
    wait = budget.take(interaction.user.id)
    if wait:
        raise budget.error(wait)
    return True


class Ask(commands.Cog):
    def __init__(self, bot: VerbatimBot) -> None:
        self.bot = bot

    # ------------------------------------------------------------ /ask

    @app_commands.command(name="ask", description="Ask a question; the answer quotes the news articles it comes from.")
    @app_commands.describe(question="What you want to know", source="Only search this article")
    @app_commands.check(question_budget)
    async def ask(self, interaction: discord.Interaction, question: str, source: str | None = None) -> None:
        # Acknowledge first: Discord gives 3 seconds, retrieval may take longer on a cold cache.
        await interaction.response.defer(thinking=True)
        engine = self.bot.live.current  # one engine for the whole command, even if a re-index swaps it
        doc_id, scope = await asyncio.to_thread(self._scope, engine, source)
        answer = await asyncio.to_thread(engine.ask, strip_mentions(question), doc_id=doc_id)
        await post_answer(answer, scope, lambda _first, kwargs: interaction.followup.send(wait=True, **kwargs),
                          engine)

    @ask.autocomplete("source")
    async def ask_source_autocomplete(
        self, _interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return self.bot.catalog.choices(current)

    def _scope(self, engine: Any, source: str | None) -> tuple[str | None, str]:
        """The article to narrow to (None for all) and the words for the footer. Runs in a worker thread."""
        if source is None or not source.strip():
            count = len(self.bot.catalog) or engine.info().documents
            return None, ("the 1 indexed article" if count == 1 else f"all {count} indexed articles")
        entry = self.bot.catalog.resolve(source)
        doc = engine.source(entry.doc_id if entry else source.strip())
        if doc is None:
            raise UnknownSourceError(source)
        return doc.doc_id, f"only “{formatting.truncate(formatting.one_line(doc.title), 120)}”"

    # ------------------------------------------------------------ mentions and replies

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        try:
            question, context = self._question_in(message)
            if question is None:
                return
            await self._answer_message(message, question, context)
        except Exception as error:  # a listener must never take the bot down with it
            log_error(error, f"message {message.id} from user {message.author.id}")
            text = user_message(error) or UNEXPECTED
            try:
                await message.reply(text, mention_author=False, allowed_mentions=NONE)
            except discord.HTTPException:
                pass

    def _question_in(self, message: discord.Message) -> tuple[str | None, str | None]:
        """(question, earlier question) when the message is meant for the bot, else (None, None)."""
        me = self.bot.user
        if me is None or message.author.bot or message.guild is None or not self._allowed(message.channel):
            return None, None
        earlier = self._replied_question(message, me.id)
        role = message.guild.self_role  # the bot's own role, which members sometimes mention instead
        typed = me.id in message.raw_mentions or (role is not None and role.id in message.raw_role_mentions)
        # `mentions` also holds the author of a message replied to with a ping; `@everyone` is not
        # a mention of the bot, on purpose.
        if not typed and earlier is None and all(user.id != me.id for user in message.mentions):
            return None, None
        question = strip_mentions(message.content)
        if not question and not typed:
            return None, None  # an image-only reply, or text Discord does not let the bot read: not a question
        return question, earlier

    def _replied_question(self, message: discord.Message, bot_id: int) -> str | None:
        reference = message.reference
        if reference is None or not isinstance(reference.resolved, discord.Message):
            return None
        return formatting.question_from_answer(reference.resolved, bot_id)

    def _allowed(self, channel: Any) -> bool:
        allowed = self.bot.settings.allowed_channel_ids
        if not allowed:
            return True
        return channel.id in allowed or getattr(channel, "parent_id", None) in allowed

    async def _answer_message(self, message: discord.Message, question: str, context: str | None) -> None:
        if not question:
            await message.reply(
                "Ask me something after the mention, for example: “How many civilians were killed?”",
                mention_author=False,
                allowed_mentions=NONE,
            )
            return
        wait = self.bot.question_budget.take(message.author.id)
        if wait:
            text = user_message(self.bot.question_budget.error(wait))
            await message.reply(text, mention_author=False, allowed_mentions=NONE)
            return
        engine = self.bot.live.current
        async with message.channel.typing():  # the mention equivalent of "thinking…"
            answer = await asyncio.to_thread(engine.ask, question, context=context)
            _doc, scope = await asyncio.to_thread(self._scope, engine, None)

        def send(first: bool, kwargs: dict[str, Any]) -> Awaitable[discord.Message]:
            return message.reply(mention_author=False, **kwargs) if first else message.channel.send(**kwargs)

        await post_answer(answer, scope, send, engine)
