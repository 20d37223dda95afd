"""/sources, /source and /search over a corpus big enough to need pages, and long answers split."""

from __future__ import annotations

import re

import pytest

from bot.discord.client import create_bot
from bot.discord.errors import UnknownSourceError, unwrap
from tests.bot.conftest import LIBRARY_SIZE, LONG_SENTENCE, SEED_URL, assert_fits, embed_text


@pytest.fixture
def simcord_bot(library_index, library):
    return create_bot(library_index, library)


DOCUMENTS = LIBRARY_SIZE + 2  # the reports, the reservoir article and the seed article


async def test_sources_are_paginated_with_buttons(env, channel, alice, bob):
    result = await alice.slash(channel, "sources")
    message = result.response
    first = message.embeds[0]
    assert first.title == f"Indexed sources ({DOCUMENTS})"
    assert first.footer.text.endswith("page 1/4")
    assert first.description.count("\n") == 9  # ten articles a page
    assert ("`report-01` [Report 01: electricity in Latakia](https://example.org/reports/01) — Example Wire, 2025-03-10"
            in first.description)
    buttons = {c["label"]: c for row in message.components for c in row["components"]}
    assert buttons["Previous"].get("disabled") and not buttons["Next"].get("disabled")

    await alice.click(message, label="Next")
    second = result.response.embeds[0]
    assert second.footer.text.endswith("page 2/4")
    assert "report-11" in second.description and "report-01" not in second.description

    # Someone else cannot turn the pages of alice's list, and is told why, privately.
    refused = await bob.click(message, label="Next")
    assert refused.ephemeral and "run it yourself" in refused.response.content
    assert result.response.embeds[0].footer.text.endswith("page 2/4")

    for _ in range(2):
        await alice.click(message, label="Next")
    last = result.response
    assert last.embeds[0].footer.text.endswith("page 4/4") and SEED_URL in last.embeds[0].description
    buttons = {c["label"]: c for row in last.components for c in row["components"]}
    assert buttons["Next"].get("disabled") and not buttons["Previous"].get("disabled")


async def test_source_autocomplete_offers_at_most_25_choices(env, channel, alice):
    everything = await alice.autocomplete(channel, "source", "id", "")
    assert len(everything) == 25
    reports = await alice.autocomplete(channel, "source", "id", "report")
    assert len(reports) == 25  # 30 match; Discord takes 25 at most
    assert all(1 <= len(c["name"]) <= 100 and len(c["value"]) <= 100 for c in everything + reports)

    narrowed = await alice.autocomplete(channel, "source", "id", "in Jableh")
    assert {c["value"] for c in narrowed} == {"report-10", "report-20", "report-30"}
    assert narrowed[0]["name"].startswith("Report 10: road repairs in Jableh — Example Wire, 2025-03-10")

    assert await alice.autocomplete(channel, "source", "id", "nothing like this") == []


async def test_source_shows_one_article(env, channel, alice):
    result = await alice.slash(channel, "source", id="report-07")
    card = result.response.embeds[0]
    assert card.title == "Report 07: electricity in Idlib"
    assert card.url == "https://example.org/reports/07"
    fields = {f.name: f.value for f in card.fields}
    assert fields["Outlet"] == "Example Wire" and fields["Published"] == "2025-03-10"
    assert int(fields["Passages"]) >= 1
    assert card.description.startswith("Officials in Idlib said on day 7")


async def test_source_with_an_unknown_id_says_what_to_do(env, channel, alice):
    result = await alice.slash(channel, "source", id="nope")
    assert "I have no article 'nope'" in result.response.content and "/sources" in result.response.content
    assert [type(unwrap(e)) for e in env.errors] == [UnknownSourceError]


async def test_search_shows_scored_passages_with_links_on_pages(env, channel, alice):
    result = await alice.slash(channel, "search", query="water supply in Jableh")
    page = result.response.embeds[0]
    assert page.title == "Search: water supply in Jableh"
    assert page.footer.text == "12 passages · page 1/3"
    assert len(page.fields) == 4
    top = page.fields[0]
    assert top.name.startswith("1. Report") and "Jableh" in top.name
    assert re.match(r"(similarity \d\.\d\d|score \d\.\d{3}) · Example Wire, 2025-03-10 · ", top.value), top.value
    assert "[article](https://example.org/reports/" in top.value
    assert_fits("", [page])

    await alice.click(result.response, label="Next")
    assert result.response.embeds[0].fields[0].name.startswith("5. ")


async def test_an_answer_longer_than_discord_allows_is_split(env, channel, alice):
    result = await alice.slash(channel, "ask", question="What did the Qardaha reservoir committee report?",
                               source="reservoir")
    messages = [result.response, *result.followups]
    assert len(messages) >= 2  # more than 6,000 characters: it cannot be one message
    for number, message in enumerate(messages, start=1):
        assert_fits(message.content, message.embeds)
        assert message.embeds[-1].footer.text.endswith(f"part {number}/{len(messages)}")
    assert messages[0].embeds[0].title == "What did the Qardaha reservoir committee report?"
    assert messages[1].embeds[0].title.endswith("(continued)")

    # Split at word boundaries, nothing lost: the parts join back into the quoted sentence.
    text = " ".join(e.description for m in messages for e in m.embeds if e.description)
    assert " ".join(LONG_SENTENCE.split()) in " ".join(text.split())
    # The button sits under the last part and its quotes are split the same way.
    shown = await alice.click(messages[-1], label="Show quotes")
    quoted = [shown.response, *shown.followups]
    assert len(quoted) >= 2 and all(m.ephemeral for m in quoted)
    for message in quoted:
        assert_fits(message.content, message.embeds)
    assert "engineer number 80" in embed_text(quoted[-1].embeds)
