"""/ask, the quotes button, mentions and reply follow-ups, against the real engine over the seed article."""

from __future__ import annotations

import math

import pytest
from discord import app_commands

from bot.discord.errors import UnknownSourceError, unwrap
from bot.discord.formatting import ANSWER_FOOTER_PREFIX, unescape
from index.errors import InvalidQuestionError
from index.settings import Settings
from tests.bot.conftest import SEED_ARTICLE, SEED_URL, assert_fits, embed_text

ARTICLE = SEED_ARTICLE.read_text(encoding="utf-8")


def bot_messages(env) -> list:
    """Every message the bot has posted anywhere, as simcord stores them."""
    return [m for channel in env.backend.messages.values() for m in channel.values() if m.author_id == env.bot.user.id]


async def test_ask_defers_first_then_answers_with_a_cited_embed(env, channel, alice):
    result = await alice.slash(channel, "ask", question="How many civilians were killed?")

    # The first thing sent is the deferral ("thinking…", callback type 5); the answer comes after it.
    sent = [r for r in env.http_requests
            if r.method == "POST" and ("/interactions/" in r.path or "/webhooks/" in r.path)]
    assert "/interactions/" in sent[0].path and sent[0].json["type"] == 5
    assert "/webhooks/" in sent[1].path
    assert not result.ephemeral

    embeds = result.response.embeds
    assert_fits(result.response.content, embeds)
    answer = embeds[0]
    assert answer.title == "How many civilians were killed?"
    assert "973" in answer.description and "[1]" in answer.description
    sources = next(f for f in answer.fields if f.name == "Sources")
    assert f"]({SEED_URL})" in sources.value  # the citation links to the seed article
    assert sources.value.startswith("1. [Syria vows accountability")
    assert "The Times of Israel, 2025-03-09" in sources.value
    assert embeds[-1].footer.text.startswith(f"{ANSWER_FOOTER_PREFIX}the 1 indexed article · ")
    assert embeds[-1].footer.text.endswith(" ms")


async def test_declined_answer_says_so_and_lists_the_closest_sources(env, channel, alice):
    result = await alice.slash(channel, "ask", question="What is the population of Damascus?")

    embed = result.response.embeds[0]
    assert "don't say" in embed.description
    closest = next(f for f in embed.fields if f.name == "Closest sources")
    assert SEED_URL in closest.value


async def test_show_quotes_button_gives_the_verbatim_sentences_privately(env, channel, alice, bob):
    result = await alice.slash(channel, "ask", question="How many civilians were killed?")

    shown = await alice.click(result.response, label="Show quotes")
    assert shown.ephemeral
    text = embed_text(shown.response.embeds)
    quote = unescape(text.split("“", 1)[1].split("”\n", 1)[0])
    assert "973 civilians" in quote and quote in " ".join(ARTICLE.split())  # verbatim from the article
    # Anyone reading the answer may check its quotes; each gets a private copy.
    assert (await bob.click(result.response, label="Show quotes")).ephemeral


async def test_source_option_narrows_the_search_and_autocompletes(env, channel, alice):
    choices = await alice.autocomplete(channel, "ask", "source", "syria")
    assert [c["value"] for c in choices] == ["syria-vows-accountability"]

    result = await alice.slash(channel, "ask", question="Who called for accountability?",
                               source="syria-vows-accountability")
    assert "only “Syria vows accountability" in result.response.embeds[-1].footer.text

    # A title typed in full works as well as the id.
    by_title = await alice.slash(
        channel, "ask", question="Who is the interim president?",
        source="Syria vows accountability after over 1,000 reportedly slain in mass killings",
    )
    assert "al-Sharaa" in by_title.response.embeds[0].description


async def test_unknown_source_is_explained_not_crashed_on(env, channel, alice):
    result = await alice.slash(channel, "ask", question="Who?", source="no-such-article")
    assert "I have no article 'no-such-article'" in result.response.content
    assert [type(unwrap(e)) for e in env.errors] == [UnknownSourceError]  # reported through the one error handler


async def test_bad_questions_get_a_clear_message(env, channel, alice):
    expected = {"   ": "The question is empty", "\x00\x01\x02": "The question is empty",
                "?!": "no words", "x" * 5000: "the limit is 1,000"}
    for question, message in expected.items():
        result = await alice.slash(channel, "ask", question=question)
        content = result.response.content
        assert message in content and len(content) <= 2000, (question, content)
    # Each went through the one error handler as an expected error, not a bug.
    assert [type(unwrap(e)) for e in env.errors] == [InvalidQuestionError] * len(expected)

    rtl = await alice.slash(channel, "ask", question="من هو وزير الخارجية الأمريكي الذي طالب بالمحاسبة؟")
    assert rtl.response.embeds  # a normal (cited or declined) answer


async def test_a_mention_is_answered_as_a_reply(env, guild, channel, alice):
    me = env.bot.user
    question = await alice.send(channel, f"<@{me.id}> How many civilians were killed?")

    reply = channel.last_message
    assert reply.author.id == me.id
    assert reply.reference is not None and reply.reference.message_id == question.id
    assert reply.embeds[0].title == "How many civilians were killed?"
    assert "973" in reply.embeds[0].description
    assert any(c.label == "Show quotes" for row in reply.components for c in row.children)


async def test_a_reply_to_an_answer_is_a_follow_up(env, channel, alice):
    me = env.bot.user
    await alice.send(channel, f"<@{me.id}> How many civilians were killed?")
    answer = channel.last_message

    # No mention needed: replying to one of the bot's answers is enough.
    await alice.send(channel, "and how many security forces?", reply_to=answer)

    follow_up = channel.last_message
    assert follow_up.author.id == me.id
    assert follow_up.embeds[0].title == "and how many security forces?"
    assert "125 members of the Syrian security forces" in follow_up.embeds[0].description


async def test_a_reply_to_a_slash_answer_is_a_follow_up_too(env, channel, alice):
    result = await alice.slash(channel, "ask", question="How many civilians were killed?")
    await alice.send(channel, "and how many security forces?", reply_to=result.response)
    assert "125" in channel.last_message.embeds[0].description


async def test_messages_not_meant_for_the_bot_are_left_alone(env, guild, channel, alice):
    await alice.send(channel, "@everyone how many civilians were killed?")
    await alice.send(channel, "just chatting")
    other = await alice.send(channel, "a message")
    await alice.send(channel, "a reply to a human", reply_to=other)
    assert bot_messages(env) == []


async def test_an_empty_mention_gets_a_hint_and_an_empty_reply_nothing(env, channel, alice):
    await alice.send(channel, f"<@{env.bot.user.id}>")
    hint = channel.last_message
    assert "Ask me something after the mention" in hint.content

    await alice.send(channel, f"<@{env.bot.user.id}> How many civilians were killed?")
    answer = channel.last_message
    await alice.send(channel, "", reply_to=answer, attachments=[("photo.png", b"not really a photo")])
    assert channel.last_message.author.id == alice.id  # an image-only reply is not a question
    assert len(bot_messages(env)) == 2


async def test_mentions_outside_the_allowed_channels_are_ignored(env, guild, channel, alice, settings):
    allowed = guild.create_text_channel("ask-here")
    # Channel ids exist only once the simulated Discord runs, so the allow-list is set on the running bot.
    env.bot.settings = settings.model_copy(update={"allowed_channel_ids": [allowed.id]})
    me = env.bot.user

    await alice.send(channel, f"<@{me.id}> How many civilians were killed?")
    assert bot_messages(env) == []

    await alice.send(allowed, f"<@{me.id}> How many civilians were killed?")
    assert "973" in allowed.last_message.embeds[0].description


async def test_everyone_and_role_mentions_in_a_question_ping_nobody(env, guild, channel, alice):
    role = guild.create_role("Moderators", mentionable=True)
    me = env.bot.user
    loud = f"@everyone <@&{role.id}> @here how many civilians were killed?"

    await alice.send(channel, f"<@{me.id}> {loud}")
    reply = channel.last_message
    assert "973" in reply.embeds[0].description  # the mentions are not part of the question
    result = await alice.slash(channel, "ask", question=loud)
    assert "973" in result.response.embeds[0].description
    # An error message that echoes user text is the riskiest: it is plain content.
    echoed = await alice.slash(channel, "ask", question="killed?", source=f"@everyone <@&{role.id}>")
    assert "@everyone" in echoed.response.content
    assert [type(unwrap(e)) for e in env.errors] == [UnknownSourceError]  # through the one error handler

    sent = bot_messages(env)
    assert len(sent) == 3
    for message in sent:
        assert not message.mention_everyone and message.ping_role_ids == [] and message.ping_user_ids == []
    bodies = [
        r.json.get("data", r.json)
        for r in env.http_requests
        if r.method in {"POST", "PATCH"} and isinstance(r.json, dict)
    ]
    messages = [b for b in bodies if isinstance(b, dict) and ("content" in b or "embeds" in b)]
    assert len(messages) >= 3
    assert all(b.get("allowed_mentions", {}).get("parse") == [] for b in messages), messages


SHIPPED_BUDGET = {name: Settings.model_fields[name].default for name in ("ask_burst", "ask_window_seconds")}


@pytest.mark.parametrize("settings", [SHIPPED_BUDGET], indirect=True)
async def test_a_conversation_is_never_refused_but_a_flood_is(env, channel, alice, bob):
    assert SHIPPED_BUDGET == {"ask_burst": 5, "ask_window_seconds": 60.0}
    me = env.bot.user
    # A normal conversation: a question, a follow-up right after it, a mention, two more questions.
    first = await alice.slash(channel, "ask", question="How many civilians were killed?")
    assert "973" in first.response.embeds[0].description
    await alice.send(channel, "and how many security forces?", reply_to=first.response)
    assert "125" in channel.last_message.embeds[0].description
    await alice.send(channel, f"<@{me.id}> Who is the interim president?")
    assert "al-Sharaa" in channel.last_message.embeds[0].description
    for question in ("Who called for accountability?", "What did al-Sharaa say?"):
        assert (await alice.slash(channel, "ask", question=question)).response.embeds

    # A sixth question within the minute is refused, privately, before any work starts, saying when.
    refused = await alice.slash(channel, "ask", question="Who is the interim president?")
    assert refused.ephemeral and not refused.deferred
    next_allowed = math.ceil(env.now().timestamp() + 60)
    assert refused.response.content == (
        f"You have asked 5 questions in the last minute, as many as I take from one person: "
        f"you can ask again <t:{next_allowed}:R>."
    )
    assert [type(e) for e in env.errors] == [app_commands.CommandOnCooldown]
    # A mention counts against the same budget and is told the same (a reply cannot be private).
    await alice.send(channel, f"<@{me.id}> Who is the interim president?")
    assert channel.last_message.content == refused.response.content

    # Someone else is not affected.
    other = await bob.slash(channel, "ask", question="How many civilians were killed?")
    assert "973" in other.response.embeds[0].description

    # Once the first question is a minute old, alice may ask again.
    await env.advance_time(61)
    assert (await alice.slash(channel, "ask", question="Who is the interim president?")).response.embeds


async def test_the_bot_never_sends_more_than_discord_allows(env, channel, alice):
    result = await alice.slash(channel, "ask", question="What did al-Sharaa say?")
    for message in [result.response, *result.followups]:
        assert_fits(message.content, message.embeds)


async def test_slash_commands_have_the_documented_shape(env):
    simcord_bot = env.bot
    ask = simcord_bot.tree.get_command("ask")
    assert ask is not None and [p.name for p in ask.parameters] == ["question", "source"]
    assert ask.get_parameter("source").autocomplete and not ask.get_parameter("source").required
    assert simcord_bot.intents.message_content
