"""/timeline through a simulated Discord, over the invented Vellmoor floods corpus (tests/data/vellmoor)."""

from __future__ import annotations

import re

import pytest

from bot.discord.client import create_bot
from index.engine import Engine, LiveEngine
from tests.bot.conftest import assert_fits, embed_text
from tests.index.time_support import FINAL_TOLL, FIRST_TOLL, build_vellmoor


@pytest.fixture(scope="module")
def vellmoor_index(tmp_path_factory, encoders):
    return build_vellmoor(tmp_path_factory.mktemp("vellmoor-bot"), encoders).model_copy(update={"ask_burst": 0})


@pytest.fixture
def simcord_bot(vellmoor_index, encoders):
    return create_bot(vellmoor_index, LiveEngine(vellmoor_index, Engine.load(vellmoor_index, encoders=encoders)))


async def test_timeline_lists_dated_quotes_in_date_order_without_pinging(env, channel, alice):
    result = await alice.slash(channel, "timeline", topic="Vellmoor floods @everyone")

    sent = [r for r in env.http_requests
            if r.method == "POST" and ("/interactions/" in r.path or "/webhooks/" in r.path)]
    assert "/interactions/" in sent[0].path and sent[0].json["type"] == 5  # deferred first
    bodies = [r.json for r in sent[1:]]
    assert bodies and all(b.get("allowed_mentions", {}).get("parse") == [] for b in bodies)

    embeds = result.response.embeds
    assert_fits(result.response.content, embeds)
    text = embed_text(embeds)
    assert embeds[0].title.startswith("Timeline: Vellmoor floods")
    dates = re.findall(r"\*\*(\d{4}-\d{2}-\d{2})\*\*", text)
    assert len(dates) >= 5 and dates == sorted(dates)
    assert "41 people had died" in text and "At least 12 people were killed" in text
    assert text.index("At least 12") < text.index("41 people had died")  # oldest first
    assert "Riverline Radio, 2026-03-09" in text  # every quote says its outlet and date
    assert FIRST_TOLL[:20] in text and FINAL_TOLL[:20] in text
