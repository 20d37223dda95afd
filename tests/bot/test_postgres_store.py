"""The bot over the Postgres store: /ask answers from it, and a change another process makes to the
index is served once the bot checks (the Admin cog's follow loop), with /sources updated."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.discord.client import create_bot
from index.engine import Engine, LiveEngine
from index.store.build import build_index
from tests.bot.conftest import SEED_URL, bot_settings, embed_text
from tests.conftest import MODEL_CACHE


@pytest.fixture
def simcord_bot(tmp_path, encoders, database_url):
    """The bot over the seed article in Postgres (conftest's `env` runs it)."""
    settings = bot_settings(tmp_path, database_url=database_url, model_cache_dir=MODEL_CACHE)
    build_index(settings, encoders=encoders)
    live = LiveEngine(settings, Engine.load(settings, encoders=encoders))
    return create_bot(settings, live)


async def test_ask_answers_from_postgres_and_follows_another_processs_update(env):
    guild = env.create_guild("Newsroom")
    channel = guild.create_text_channel("news")
    alice = guild.add_member(env.create_user("alice"))
    bot = env.bot
    assert bot.live.current.stored.location.startswith("postgresql://")

    result = await alice.slash(channel, "ask", question="How many civilians were killed?")
    answer = result.response.embeds[0]
    assert "973" in answer.description and "[1]" in answer.description
    assert SEED_URL in embed_text(result.response.embeds)

    # Another process (a replica, or an operator's terminal) adds an invented report to the same database.
    settings = bot.settings
    (settings.corpus_dir / "vellmoor-levee.md").write_text(
        "---\ntitle: Vellmoor levee to be rebuilt\nsource: The Dunmarsh Courier\npublished: 2026-05-10\n---\n"
        "The county council will rebuild the Vellmoor levee by 2028 at a cost of 14 million crowns, its "
        "engineer Odile Frankwater said.\n", encoding="utf-8")
    env_vars = {**os.environ, "CORPUS_DIR": str(settings.corpus_dir), "DATA_DIR": str(settings.data_dir),
                "MODEL_CACHE_DIR": str(settings.model_cache_dir),
                "DATABASE_URL": settings.database_url.get_secret_value()}
    done = subprocess.run([sys.executable, "-m", "bot.cli", "index", "update"], env=env_vars, capture_output=True,
                          text=True, timeout=300, cwd=Path(__file__).parents[2])
    assert done.returncode == 0, done.stderr

    admin = bot.get_cog("Admin")
    assert await admin.follow_once()  # what the loop does every INDEX_FOLLOW_SECONDS
    assert not await admin.follow_once()  # and only once

    listed = await alice.slash(channel, "sources")
    assert "Vellmoor levee to be rebuilt" in embed_text(listed.response.embeds)
    result = await alice.slash(channel, "ask", question="How much will rebuilding the Vellmoor levee cost?")
    assert "14 million crowns" in result.response.embeds[0].description
