"""Questions: /ask, messages that mention the bot, replies to its answers and questions in threads
(follow-ups, with the earlier questions as context), and forum posts with the server's forum tag."""

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
from bot.discord.cogs.feedback import answer_buttons
from bot.discord.errors import NONE, UNEXPECTED, UnknownSourceError, count_error, log_error, user_message
from bot.discord.streaming import Send, answer_as_written

if TYPE_CHECKING:
    from bot.discord.catalog import Scope
    from bot.discord.client import VerbatimBot
    from index.answers.compose import Answer
    from index.engine import Engine

log = logging.getLogger("verbatim.discord.ask")

# Discord mention markup (<@user>, <@&role>, <#channel>) and @everyone/@here mean nothing to the engine
# and only blur retrieval; they are removed from questions (they could never ping anyway: see NONE).
_MENTION = re.compile(r"<(?:@[!&]?|#)\d+>|(?<![\w.])@(?:everyone|here)\b")


def strip_mentions(text: str) -> str:
    return " ".join(_MENTION.sub(" ", text or "").split())


async def post_answer(answer: Answer, scope: str, send: Send, buttons: discord.ui.View, engine: Engine) -> None:
    """Send an answer as one or more messages; `send(first, kwargs)` posts one, the buttons (quotes,
    👍, 👎: see answer_buttons) go under the last. Each source names the other outlets that reported its
    story (`engine`)."""
    also = (await asyncio.to_thread(engine.also_reported, [c.doc_id for c in answer.citations])
            if answer.citations else {})
    messages = formatting.answer_messages(answer, scope=scope, also_reported=also)
    for number, embeds in enumerate(messages, start=1):
        kwargs: dict[str, Any] = {"embeds": embeds, "allowed_mentions": NONE}
        if number == len(messages):
            kwargs["view"] = buttons
        await send(number == 1, kwargs)


def question_budget(interaction: discord.Interaction) -> bool:
    """App-command check: the user's question budget on this server (`/config budget`, else
    `ask_burst` per `ask_window_seconds`)."""
    budget = interaction.client.question_budget(interaction.guild_id)  # type: ignore[attr-defined]
    wait = budget.take(interaction.user.id)
    if wait:
        raise budget.error(wait)
    return True


# A thread's context: at most this many of the bot's earlier questions there, found among this many
# of its latest messages (one history request).
THREAD_CONTEXT_QUESTIONS = 3
THREAD_HISTORY = 50


class Ask(commands.Cog):
    def __init__(self, bot: VerbatimBot) -> None:
        self.bot = bot

    # ------------------------------------------------------------ /ask

    @app_commands.command(name="ask", description="Ask a question; the answer quotes the news articles it comes from.")
    @app_commands.describe(question="What you want to know", source="Only search this article")
    @app_commands.check(question_budget)
    async def ask(self, interaction: discord.Interaction, question: str, source: str | None = None) -> None:
        guild_id = interaction.guild_id
        # A server may show answers to the asker only; the deferral decides that for the whole reply.
        private = self.bot.answers_privately(guild_id)
        # Acknowledge first: Discord gives 3 seconds, retrieval may take longer on a cold cache.
        await interaction.response.defer(thinking=True, ephemeral=private)
        self.bot.health.asked("slash")
        await self._answer(
            strip_mentions(question), source=source, guild_id=guild_id, channel_id=interaction.channel_id,
            send=lambda _first, kwargs: interaction.followup.send(wait=True, ephemeral=private, **kwargs),
        )

    async def _answer(self, question: str, *, guild_id: int | None, channel_id: int | None,
                      send: Callable[[bool, dict[str, Any]], Awaitable[discord.Message | None]],
                      source: str | None = None, context: str | None = None) -> None:
        """Answer from the articles this server uses, then post the answer with its buttons."""
        engine = self.bot.live.current  # one engine for the whole question, even if a re-index swaps it
        scope = await asyncio.to_thread(self.bot.scope, engine, guild_id)
        doc_id, words = await asyncio.to_thread(self._narrowed, engine, source, scope)

        async def post_with_buttons(answer: Answer, words: str, send: Send) -> None:
            buttons = await answer_buttons(self.bot, answer, guild_id=guild_id, channel_id=channel_id)
            await post_answer(answer, words, send, buttons, engine)

        # A written answer (ANSWER_MODE=llm) is shown as its checked sentences come; the model is waited
        # for on the bot's writer threads, so that other questions never wait for a free thread.
        written = self.bot.settings.answer_mode == "llm"
        answer = await answer_as_written(
            lambda on_written: engine.ask(question, doc_id=doc_id, context=context, allowed_doc_ids=scope.allowed,
                                          on_written=on_written),
            words, send, post_with_buttons, executor=self.bot.writer_jobs if written else None)
        self.bot.health.answered(answer)

    @ask.autocomplete("source")
    async def ask_source_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return self.bot.catalog.choices(current, self.bot.catalog_allowed(interaction.guild_id))

    def _narrowed(self, engine: Any, source: str | None, scope: Scope) -> tuple[str | None, str]:
        """The article to narrow to (None for all the scope) and the words for the footer. Runs in a worker thread."""
        if source is None or not source.strip():
            return None, scope.words
        entry = self.bot.catalog.resolve(source)
        doc = engine.source(entry.doc_id if entry else source.strip())
        if doc is None or not scope.admits(doc.doc_id):
            raise UnknownSourceError(source)
        return doc.doc_id, f"only “{formatting.truncate(formatting.one_line(doc.title), 120)}”"

    # ------------------------------------------------------------ mentions and replies

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        try:
            question, replied = self._question_in(message)
            if question is None:
                return
            await self._answer_message(message, question, replied)
        except Exception as error:  # a listener must never take the bot down with it
            log_error(error, f"message {message.id} from user {message.author.id}")
            count_error(self.bot, error)
            text = user_message(error) or UNEXPECTED
            try:
                await message.reply(text, mention_author=False, allowed_mentions=NONE)
            except discord.HTTPException:
                pass

    def _question_in(self, message: discord.Message) -> tuple[str | None, str | None]:
        """(question, earlier question) when the message is meant for the bot, else (None, None)."""
        me = self.bot.user
        if me is None or message.author.bot or message.guild is None or not self._allowed(message, message.guild):
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

    def _allowed(self, message: discord.Message, guild: discord.Guild) -> bool:
        """Whether mentions in this message's channel are answered (`/config channels`, else ALLOWED_CHANNEL_IDS)."""
        channel = message.channel
        return self.bot.server_config(guild.id).answers_in(channel.id, getattr(channel, "parent_id", None))

    async def _thread_context(self, thread: discord.Thread, message: discord.Message,
                              replied: str | None) -> str | None:
        """The questions the bot answered earlier in this thread (and in the answer the thread was started
        from), oldest first, with the answer replied to (if any) last: what a follow-up continues."""
        me = self.bot.user
        if me is None:
            return replied
        found: list[str] = [replied] if replied else []
        async for earlier in thread.history(limit=THREAD_HISTORY, before=message):  # newest first
            question = formatting.question_from_answer(earlier, me.id)
            if question and question not in found:
                found.append(question)
            if len(found) >= THREAD_CONTEXT_QUESTIONS:
                break
        if len(found) < THREAD_CONTEXT_QUESTIONS and isinstance(thread.parent, discord.TextChannel):
            # A thread started from a message has that message's id; it stays in the parent channel.
            try:
                starter = thread.starter_message or await thread.parent.fetch_message(thread.id)
            except discord.HTTPException:  # not started from a message, or it was deleted
                starter = None
            question = formatting.question_from_answer(starter, me.id) if starter else None
            if question and question not in found:
                found.append(question)
        if not found:
            return None
        context = " ".join(reversed(found))
        return context[-self.bot.settings.max_question_chars:]  # the newest questions matter most

    async def _answer_message(self, message: discord.Message, question: str, replied: str | None) -> None:
        """Answer a mention or reply: the empty-question hint and the question budget come first, so a
        refused question costs no history request; in a thread, earlier questions there are the context."""
        if not question:
            await message.reply(
                "Ask me something after the mention, for example: “How many civilians were killed?”",
                mention_author=False,
                allowed_mentions=NONE,
            )
            return
        guild_id = message.guild.id if message.guild else None
        budget = self.bot.question_budget(guild_id)
        wait = budget.take(message.author.id)
        if wait:
            text = user_message(budget.error(wait))
            await message.reply(text, mention_author=False, allowed_mentions=NONE)
            return
        self.bot.health.asked("mention")
        context = replied
        if isinstance(message.channel, discord.Thread):
            context = await self._thread_context(message.channel, message, replied)

        def send(first: bool, kwargs: dict[str, Any]) -> Awaitable[discord.Message]:
            return message.reply(mention_author=False, **kwargs) if first else message.channel.send(**kwargs)

        # Mentions are answered in the channel even on a server whose /ask answers are private: a reply
        # to a public message cannot be private, and a direct message may be closed to the bot.
        async with message.channel.typing():  # the mention equivalent of "thinking…"
            await self._answer(question, guild_id=guild_id, channel_id=message.channel.id, send=send,
                               context=context)

    # ------------------------------------------------------------ forum posts

    @commands.Cog.listener()
    async def on_thread_create(self, thread: discord.Thread) -> None:
        """A new forum post carrying the server's forum tag gets an answer to its title and first message."""
        try:
            question = await self._forum_question(thread)
            if question is None:
                return
            budget = self.bot.question_budget(thread.guild.id)
            wait = budget.take(thread.owner_id)
            if wait:
                await thread.send(user_message(budget.error(wait)), allowed_mentions=NONE)
                return
            self.bot.health.asked("forum")
            await self._answer(question, guild_id=thread.guild.id, channel_id=thread.id,
                               send=lambda _first, kwargs: thread.send(**kwargs))
        except Exception as error:  # a listener must never take the bot down with it
            log_error(error, f"forum post {thread.id} by user {thread.owner_id}")
            count_error(self.bot, error)
            try:
                await thread.send(user_message(error) or UNEXPECTED, allowed_mentions=NONE)
            except discord.HTTPException:
                pass

    async def _forum_question(self, thread: discord.Thread) -> str | None:
        """The question a forum post asks, or None when the bot should leave the post alone."""
        me = self.bot.user
        if me is None or thread.owner_id == me.id or not isinstance(thread.parent, discord.ForumChannel):
            return None
        tag = self.bot.server_config(thread.guild.id).forum_tag
        if tag is None or all(t.name.casefold() != tag.casefold() for t in thread.applied_tags):
            return None
        # The post's first message (its id is the thread's in Discord; reading the oldest message also
        # works where it is not). Without the Message Content intent only the title is readable.
        body = ""
        async for first in thread.history(limit=1, oldest_first=True):
            if first.author.bot:
                return None
            body = first.content
        question = strip_mentions(f"{thread.name}\n{body}")
        limit = self.bot.settings.max_question_chars
        return question if len(question) <= limit else question[:limit].rsplit(" ", 1)[0]
