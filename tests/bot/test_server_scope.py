"""A server's chosen sources (/config sources) bound everything that shows or searches articles: /ask,
/check, /timeline and /search, /sources and /source, and the autocomplete of /ask and /source. The
corpus itself stays shared. Over the library corpus (30 reports, the reservoir and the seed article)."""

from __future__ import annotations

import re

import discord
import pytest

from bot.discord.client import create_bot
from bot.discord.errors import UnknownSourceError, unwrap
from tests.bot.conftest import LIBRARY_SIZE, embed_text

CHOSEN = "report-01, report-02, The Times of Israel"  # two ids and an outlet: three articles


@pytest.fixture
def simcord_bot(library_index, library, tmp_path):
    # The servers' settings in this test's own data folder, not in the session's shared one.
    return create_bot(library_index.model_copy(update={"data_dir": tmp_path / "var"}), library)


@pytest.fixture
def admin(env, guild):
    managers = guild.create_role("Managers", permissions=discord.Permissions(manage_guild=True))
    return guild.add_member(env.create_user("carol"), roles=[managers])


async def test_everything_that_lists_or_searches_articles_keeps_to_the_servers_sources(env, guild, channel, admin,
                                                                                       alice):
    other = env.create_guild("Other Newsroom")
    other_channel = other.create_text_channel("general")
    dana = other.add_member(env.create_user("dana"))
    await admin.slash(channel, "config sources", sources=CHOSEN)

    listed = await alice.slash(channel, "sources")
    assert listed.response.embeds[0].title == "Sources this server uses (3)"
    shown = embed_text(listed.response.embeds)
    assert "`report-01`" in shown and "`report-02`" in shown and "`report-03`" not in shown
    everywhere = await dana.slash(other_channel, "sources")  # the other server keeps every article
    assert everywhere.response.embeds[0].title == f"Indexed sources ({LIBRARY_SIZE + 2})"

    card = await alice.slash(channel, "source", id="report-02")
    assert card.response.embeds[0].title == "Report 02: bread prices in Tartus"
    refused = await alice.slash(channel, "source", id="report-03")
    assert "I have no article 'report-03'" in refused.response.content
    assert [type(unwrap(e)) for e in env.errors] == [UnknownSourceError]

    for command in ("source", "ask"):
        option = "id" if command == "source" else "source"
        offered = await alice.autocomplete(channel, command, option, "report")
        # "report" is in the seed article's title too ("reportedly"): it is one of the three.
        assert sorted(c["value"] for c in offered) == ["report-01", "report-02", "syria-vows-accountability"]
        assert len(await dana.autocomplete(other_channel, command, option, "report")) == 25

    checked = await alice.slash(channel, "check", claim="The bread prices situation in Tartus was under review.")
    assert checked.response.embeds[-1].footer.text.startswith("Checked against the 3 articles this server uses")
    elsewhere = await dana.slash(other_channel, "check", claim="The bread prices situation in Tartus was under review.")
    assert elsewhere.response.embeds[-1].footer.text.startswith(f"Checked against all {LIBRARY_SIZE + 2} indexed")

    found = await alice.slash(channel, "search", query="water supply in Jableh")
    cited = embed_text(found.response.embeds)
    assert "Report 01" in cited  # Latakia's, in the scope; Jableh's reports (10, 20, 30) are not
    assert not re.search(r"Report (0[3-9]|[12]\d|30)", cited) and "Reservoir inspection" not in cited
