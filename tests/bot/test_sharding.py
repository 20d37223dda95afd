"""SHARD_COUNT / SHARD_IDS: one connection, all shards in one process, or some shards in each process."""

from __future__ import annotations

import pytest
from discord.ext import commands
from pydantic import ValidationError
from simcord import Env

from bot.discord.client import ShardedVerbatimBot, VerbatimBot, create_bot
from index.settings import Settings
from tests.bot.conftest import SETTLE_TIMEOUT
from tests.index.test_cli import run

QUESTION = "How many civilians were killed?"


def test_shard_settings_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("SHARD_COUNT", "4")
    monkeypatch.setenv("SHARD_IDS", "2, 3")
    settings = Settings(_env_file=None)
    assert (settings.shard_count, settings.shard_ids) == (4, [2, 3])
    assert Settings(_env_file=None, shard_ids="").shard_ids == []  # SHARD_IDS= means every shard


@pytest.mark.parametrize(("values", "message"), [
    ({"shard_ids": "0,1"}, "SHARD_IDS=0,1 needs SHARD_COUNT"),
    ({"shard_ids": "1,1", "shard_count": 2}, "SHARD_IDS=1,1 names a shard twice"),
    ({"shard_ids": "1,2,5", "shard_count": 3},
     "SHARD_IDS=1,2,5 has 5, but with SHARD_COUNT=3 shard ids run from 0 to 2"),
    ({"shard_ids": "-1", "shard_count": 3}, "has -1"),
])
def test_shard_ids_that_cannot_work_are_refused_with_what_to_change(values, message):
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None, **values)
    assert message in str(caught.value)


def test_shard_count_must_be_positive():
    with pytest.raises(ValidationError, match="shard_count"):
        Settings(_env_file=None, shard_count=0)


def test_verbatim_run_names_the_bad_shard_setting_in_one_line(tmp_path):
    result = run(["run"], extra_env={"DISCORD_TOKEN": "x", "SHARD_COUNT": "2", "SHARD_IDS": "0,2",
                                     "DATA_DIR": str(tmp_path)})
    assert result.returncode == 1
    assert "SHARD_IDS=0,2 has 2, but with SHARD_COUNT=2 shard ids run from 0 to 1" in result.stderr
    assert "Traceback" not in result.stderr and "Value error" not in result.stderr


@pytest.mark.parametrize(("values", "sharded", "count", "ids"), [
    ({}, False, None, None),
    ({"shard_count": 3}, True, 3, None),  # discord.py's AutoShardedBot runs all 3 in this process
    ({"shard_count": 4, "shard_ids": [1, 3]}, True, 4, [1, 3]),
])
def test_the_bot_class_follows_the_shard_settings(settings, live, values, sharded, count, ids):
    bot = create_bot(settings.model_copy(update=values), live)
    assert isinstance(bot, VerbatimBot)  # the cogs see the same bot either way
    assert isinstance(bot, commands.AutoShardedBot) is sharded
    assert isinstance(bot, ShardedVerbatimBot) is sharded
    assert bot.shard_count == count
    assert getattr(bot, "shard_ids", None) == ids


async def test_one_process_with_every_shard_answers_in_servers_on_each(settings, live):
    bot = create_bot(settings.model_copy(update={"shard_count": 2}), live)
    env = Env(bot, settle_timeout=SETTLE_TIMEOUT)
    first, second = env.create_guild("Harbour desk", shard_id=0), env.create_guild("Valley desk", shard_id=1)
    await env.start()
    try:
        assert sorted(bot.shards) == [0, 1]
        for guild in (first, second):
            channel = guild.create_text_channel("news")
            reader = guild.add_member(env.create_user(f"reader-{guild.id}"))
            result = await reader.slash(channel, "ask", question=QUESTION)
            assert "973" in result.response.embeds[0].description
            assert bot.get_guild(guild.id).shard_id == (0 if guild is first else 1)
    finally:
        await env.shutdown()
        env._raise_errors_since(env._errors_acknowledged)


async def test_a_process_with_some_shard_ids_serves_only_their_servers(settings, live):
    bot = create_bot(settings.model_copy(update={"shard_count": 2, "shard_ids": [1]}), live)
    env = Env(bot, settle_timeout=SETTLE_TIMEOUT)
    elsewhere, here = env.create_guild("Harbour desk", shard_id=0), env.create_guild("Valley desk", shard_id=1)
    await env.start()
    try:
        assert sorted(bot.shards) == [1]
        # Discord sends a server's events to the shard that owns it: shard 0's server is another process's.
        assert bot.get_guild(elsewhere.id) is None and bot.get_guild(here.id) is not None
        channel = here.create_text_channel("news")
        reader = here.add_member(env.create_user("reader"))
        await reader.send(channel, f"<@{bot.user.id}> {QUESTION}")
        assert "973" in channel.last_message.embeds[0].description
    finally:
        await env.shutdown()
        env._raise_errors_since(env._errors_acknowledged)
