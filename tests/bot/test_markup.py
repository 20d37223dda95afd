"""Articles and users write Markdown, mentions and links; the bot shows them as text, never renders them.

Discord renders Markdown in message content, embed descriptions, titles and field values: an article's
`**`, `[text](url)`, `# ` or `<@id>` would turn into formatting, a disguised link or a mention pill inside
an answer. These tests build an index from an article full of such markup and check what users see.
"""

from __future__ import annotations

import re

import pytest

from bot.discord import formatting
from bot.discord.client import create_bot
from bot.discord.errors import UnknownSourceError, unwrap
from index.engine import Engine, LiveEngine
from index.store.build import build_index
from tests.bot.conftest import bot_settings, write_article

USER = "<@123456789012345678>"
CHANNEL = "<#987654321098765432>"
TITLE = f"**Dam** news [click](https://evil.example/t) {USER}"
OUTLET = "@everyone ||Wire||"
BODY = (
    f"> Engineers finished **repairs** on the [Qarun dam](https://evil.example/phish) on Tuesday, said {USER} in "
    f"{CHANNEL}.\n\n"
    "# The authority said __41 workers__ took part, and @everyone in ~~the valley~~ was told, a ||secret|| kept "
    "in `code`.\n\n"
    "Farmers downstream had lost access to irrigation water while the dam was closed."
)
# What a reader must see: every character of the article, each markup character escaped with a backslash.
REPAIRS = (
    r"\> Engineers finished \*\*repairs\*\* on the \[Qarun dam\](https://evil.example/phish) on Tuesday, said "
    r"\<\@123456789012345678> in \<#987654321098765432>."
)
WORKERS = (
    r"\# The authority said \_\_41 workers\_\_ took part, and \@everyone in \~\~the valley\~\~ was told, "
    r"a \|\|secret\|\| kept in \`code\`."
)
SHOWN_TITLE = r"\*\*Dam\*\* news \[click\](https://evil.example/t) \<\@123456789012345678>"
SHOWN_OUTLET = r"\@everyone \|\|Wire\|\|"

# Markup Discord would act on: anything here not preceded by a backslash.
LIVE_MARKUP = re.compile(
    r"(?<!\\)(?:\*\*|__|~~|\|\||`|<[@#]|@everyone"
    r"|\[(?:\\.|[^\\\]])*\]\((?!https://example\.org/dam\)))"  # a masked link, except the bot's own citation link
)


@pytest.fixture(scope="module")
def markup_index(tmp_path_factory, encoders):
    settings = bot_settings(tmp_path_factory.mktemp("markup-index"))
    write_article(settings.corpus_dir, "markup", TITLE, BODY, url="https://example.org/dam", source=OUTLET)
    build_index(settings, encoders=encoders)
    return settings


@pytest.fixture
def simcord_bot(markup_index, encoders):
    return create_bot(markup_index, LiveEngine(markup_index, Engine.load(markup_index, encoders=encoders)))


def sent_bodies(env) -> list[dict]:
    """The JSON bodies of every message the bot posted or edited."""
    bodies = [r.json.get("data", r.json) for r in env.http_requests
              if r.method in {"POST", "PATCH"} and isinstance(r.json, dict)]
    return [b for b in bodies if isinstance(b, dict) and ("content" in b or "embeds" in b)]


def assert_nothing_pings(env) -> None:
    bodies = sent_bodies(env)
    assert bodies and all(b.get("allowed_mentions", {}).get("parse") == [] for b in bodies), bodies


async def test_the_answer_body_shows_an_article_s_markup_as_text(env, channel, alice):
    result = await alice.slash(channel, "ask", question="When did engineers finish repairs on the Qarun dam?",
                               source="markup")
    answer = result.response.embeds[0]
    # The quoted words are escaped; the [1] marker is the bot's own and stays as it is.
    assert answer.description == f"{REPAIRS} [1]"
    sources = next(f for f in answer.fields if f.name == "Sources")
    # The citation's own link still works; the title's markup and the outlet's @everyone do not.
    assert sources.value == f"1. [{SHOWN_TITLE}](https://example.org/dam) — {SHOWN_OUTLET}, 2025-03-10"
    assert not LIVE_MARKUP.search(answer.description + sources.value)

    other = await alice.slash(channel, "ask", question="How many workers took part?", source="markup")
    assert other.response.embeds[0].description == f"{WORKERS} [1]"

    quotes = await alice.click(result.response, label="Show quotes")
    text = quotes.response.embeds[0].description
    assert text.startswith(f"**[1]** “{REPAIRS}”\n— [{SHOWN_TITLE}](https://example.org/dam)")
    assert_nothing_pings(env)


async def test_a_mention_s_answer_is_escaped_too(env, channel, alice):
    await alice.send(channel, f"<@{env.bot.user.id}> How many workers took part in the authority's work?")
    reply = channel.last_message
    assert reply.embeds[0].description == f"{WORKERS} [1]"
    assert_nothing_pings(env)


async def test_search_source_and_sources_show_titles_and_passages_as_text(env, channel, alice):
    search = await alice.slash(channel, "search", query="**41 workers** took part <@1>")
    page = search.response.embeds[0]
    assert page.title == r"Search: \*\*41 workers\*\* took part \<\@1>"
    top = page.fields[0]
    assert top.name == f"1. {SHOWN_TITLE}"
    assert f"· {SHOWN_OUTLET}, 2025-03-10 · [article](https://example.org/dam)\n> " in top.value
    assert not LIVE_MARKUP.search(top.name + top.value.replace("[article](https://example.org/dam)", ""))

    card = (await alice.slash(channel, "source", id="markup")).response.embeds[0]
    assert card.title == SHOWN_TITLE and card.url == "https://example.org/dam"
    assert card.description.startswith(REPAIRS)
    assert {f.name: f.value for f in card.fields}["Outlet"] == SHOWN_OUTLET

    listing = (await alice.slash(channel, "sources")).response.embeds[0]
    assert f"`markup` [{SHOWN_TITLE}](https://example.org/dam) — {SHOWN_OUTLET}, 2025-03-10" in listing.description
    assert_nothing_pings(env)


async def test_user_text_echoed_in_an_error_is_shown_as_text(env, channel, alice):
    result = await alice.slash(channel, "source", id="**bold** [x](https://evil.example) <@&42> @here")
    assert result.response.content == (
        r"I have no article '\*\*bold\*\* \[x\](https://evil.example) \<\@&42> \@here'. "
        "Pick one from the list as you type, or see /sources."
    )
    assert [type(unwrap(e)) for e in env.errors] == [UnknownSourceError]
    assert_nothing_pings(env)


def test_escaping_keeps_every_character_and_survives_splitting():
    text = "**a** [b](https://x.example) <@1> `c` ||d|| ~~e~~ __f__ # g > h - i 1. j \\k " * 200
    escaped = formatting.escape(text)
    assert formatting.unescape(escaped) == text
    assert not LIVE_MARKUP.search(escaped)
    # A long unbroken run of markup must be cut between escapes, never inside one.
    for source in (text, "*" * 9000):
        messages = formatting.pack("t", formatting.escape(source))
        chunks = [e.description for embeds in messages for e in embeds]
        assert len(chunks) > 1
        for chunk in chunks:
            trailing = len(chunk) - len(chunk.rstrip("\\"))
            assert trailing % 2 == 0, chunk[-10:]
            assert not LIVE_MARKUP.search(chunk)
            assert not re.match(r"[#>*_~|`-]", chunk)  # no piece starts with live markup
        assert "".join(formatting.unescape(c) for c in chunks).replace(" ", "") == source.strip().replace(" ", "")


def test_a_question_with_markup_is_recovered_exactly_for_follow_ups():
    from index.answers.compose import Answer

    question = "Why did **they** say [that](https://x.example) to <@1> \\ # now?"
    first = formatting.answer_messages(Answer(question, False, "No.", [], "en"), scope="x")[0]

    class Message:  # the two attributes the function reads, as a discord.Message has them
        author = type("Author", (), {"id": 42})()
        embeds = first

    assert first[0].title == formatting.escape(question)
    assert formatting.question_from_answer(Message, 42) == question
