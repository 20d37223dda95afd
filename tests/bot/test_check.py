"""The "Check with sources" message menu and /check, against the real engine over the seed article."""

from __future__ import annotations

import pytest
from discord import app_commands

from bot.discord.cogs.check import CHECK_FOOTER_PREFIX, MENU_NAME, NOTHING_TO_CHECK
from bot.discord.errors import unwrap
from bot.discord.formatting import unescape
from index.errors import InvalidQuestionError
from tests.bot.conftest import SEED_ARTICLE, SEED_URL, assert_fits, embed_text

ARTICLE = " ".join(SEED_ARTICLE.read_text(encoding="utf-8").split())


def deferred_first(env) -> None:
    sent = [r for r in env.http_requests
            if r.method == "POST" and ("/interactions/" in r.path or "/webhooks/" in r.path)]
    assert "/interactions/" in sent[0].path and sent[0].json["type"] == 5  # "thinking…" before any work
    assert "/webhooks/" in sent[1].path


def quotes_in(text: str) -> list[str]:
    return [unescape(part.split("”", 1)[0]) for part in text.split("“")[1:]]


async def test_menu_on_a_message_with_a_supported_claim_quotes_the_supporting_sentence(env, channel, alice, bob):
    message = await bob.send(channel, "Apparently more than 973 civilians were killed since the violence began.")

    result = await alice.context_menu(channel, MENU_NAME, message)

    deferred_first(env)
    embeds = result.response.embeds
    assert_fits(result.response.content, embeds)
    text = embed_text(embeds)
    assert embeds[0].title.startswith("Claim: Apparently more than 973 civilians")
    assert "**Supported.**" in embeds[0].description
    assert "✅ Supports [1]" in embeds[0].description and "❌" not in embeds[0].description
    quotes = quotes_in(embeds[0].description)
    assert quotes and "973 civilians" in quotes[0] and quotes[0] in ARTICLE  # verbatim from the article
    assert f"]({SEED_URL})" in text and "The Times of Israel, 2025-03-09" in text
    assert embeds[-1].footer.text.startswith(f"{CHECK_FOOTER_PREFIX}the 1 indexed article")


async def test_menu_on_a_message_with_a_contradicted_figure_quotes_the_reported_figure(env, channel, alice, bob):
    message = await bob.send(channel, "Only 50 civilians were killed, the rest is propaganda.")

    result = await alice.context_menu(channel, MENU_NAME, message)

    deferred_first(env)
    description = result.response.embeds[0].description
    assert "**Contradicted.**" in description
    assert "❌ Contradicts [1]" in description and "gives 973 where the claim says 50" in description
    assert "973 civilians" in quotes_in(description)[0]


async def test_checking_a_message_that_pings_everyone_pings_nobody(env, channel, alice, bob):
    message = await bob.send(channel, "@everyone <@&42> only 50 civilians were killed **trust me**")

    result = await alice.context_menu(channel, MENU_NAME, message)

    assert "**Contradicted.**" in result.response.embeds[0].description
    replies = [r for r in env.http_requests if r.method == "POST" and "/webhooks/" in r.path]
    assert replies and all(r.json.get("allowed_mentions") == {"parse": []} for r in replies)
    assert "@everyone" not in embed_text(result.response.embeds)  # the mention is gone from the claim


async def test_menu_on_a_message_without_text_says_so_privately(env, channel, alice, bob):
    message = await bob.send(channel, "@everyone")

    result = await alice.context_menu(channel, MENU_NAME, message)

    assert result.ephemeral and result.response.content == NOTHING_TO_CHECK


async def test_slash_check_says_when_the_sources_do_not_address_a_claim(env, channel, alice):
    result = await alice.slash(channel, "check", claim="Riverton Rovers won the regional football cup.")

    deferred_first(env)
    embed = result.response.embeds[0]
    assert embed.title == "Claim: Riverton Rovers won the regional football cup."
    assert "**Not addressed.** The sources I have don't address this claim." in embed.description
    assert not any(f.name == "Sources" for f in embed.fields)


async def test_slash_check_reads_the_words_not_the_markup(env, channel, alice):
    typed = "**Only** 50 civilians were `killed` [see](https://x.example) <@&7>"
    result = await alice.slash(channel, "check", claim=typed)

    embed = result.response.embeds[0]
    # Markup, links and mentions are no part of the claim: what it says is its words.
    assert embed.title == "Claim: Only 50 civilians were killed"
    assert "**Contradicted.**" in embed.description


@pytest.mark.parametrize("settings", [{"ask_burst": 1, "ask_window_seconds": 600}], indirect=True)
async def test_checks_share_the_question_budget(env, channel, alice, bob):
    await alice.slash(channel, "check", claim="More than 973 civilians were killed.")
    message = await bob.send(channel, "Only 50 civilians were killed.")

    second = await alice.context_menu(channel, MENU_NAME, message)

    # Refused privately before any work starts, as /ask is; the refusal is the budget's, not a bug.
    assert second.ephemeral and not second.deferred
    assert second.response.content.startswith("You have asked 1 question")
    assert [type(e) for e in env.errors] == [app_commands.CommandOnCooldown]


async def test_a_claim_longer_than_a_question_may_be_is_refused_with_the_limit(env, channel, alice, bob):
    message = await bob.send(channel, "Only 50 civilians were killed. " * 50)  # 1,550 characters

    result = await alice.context_menu(channel, MENU_NAME, message)

    assert "the limit is 1,000" in result.response.content
    # It went through the one error handler as an expected error, not a bug.
    assert [type(unwrap(e)) for e in env.errors] == [InvalidQuestionError]
