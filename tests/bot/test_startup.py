"""Starting the bot: token problems end in one clear line, a missing intent is survived, guild sync."""

from __future__ import annotations

import json
import logging

import discord
import pytest
from aiohttp import web
from simcord import Env

from bot.discord import client
from bot.discord.client import MISSING_INTENT, create_bot, run_bot, serve, start
from bot.discord.errors import StartupError
from tests.bot.conftest import SETTLE_TIMEOUT

TOKEN = "MTIzNDU2Nzg5MDEy.fake.token-that-discord-refuses"  # noqa: S105 - a made-up token


def test_a_missing_token_is_one_clear_line(settings):
    with pytest.raises(StartupError) as caught:
        run_bot(settings.model_copy(update={"discord_token": None}))
    message = str(caught.value)
    assert "DISCORD_TOKEN is not set" in message and "docs/discord.md" in message
    assert "\n" not in message


@pytest.fixture
async def discord_that_refuses_tokens(monkeypatch):
    """A local stand-in for Discord's REST API that answers every token with 401 Unauthorized."""
    seen = []

    async def users_me(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        body = json.dumps({"message": "401: Unauthorized", "code": 0})
        # discord.py wants exactly this content type (no charset) to read the error as JSON.
        return web.Response(status=401, body=body.encode(), headers={"Content-Type": "application/json"})

    app = web.Application()
    app.router.add_get("/api/v10/users/@me", users_me)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    monkeypatch.setattr(discord.http.Route, "BASE", f"http://127.0.0.1:{port}/api/v10")
    yield seen
    await runner.cleanup()


async def test_an_invalid_token_is_one_clear_line_and_never_logged(discord_that_refuses_tokens, settings, live, caplog):
    caplog.set_level(logging.DEBUG)
    with pytest.raises(StartupError) as caught:
        await start(settings, live, TOKEN)
    message = str(caught.value)
    assert "Discord refused DISCORD_TOKEN" in message and "\n" not in message
    assert discord_that_refuses_tokens == [f"Bot {TOKEN}"]  # it really asked Discord
    assert TOKEN not in caplog.text


def test_the_token_is_redacted_from_any_log_line():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "connecting with %s", (TOKEN,), None)
    client._Redact(TOKEN).filter(record)
    assert record.getMessage() == "connecting with [token]"


async def test_without_the_message_content_intent_slash_commands_still_work(settings, live, caplog):
    """Discord refuses a privileged intent the portal has not granted; the bot starts again without it."""
    envs: list[Env] = []

    async def connect(bot):
        env = Env(bot, approved_intents=discord.Intents.default(), settle_timeout=SETTLE_TIMEOUT)
        await env.start()  # raises PrivilegedIntentsRequired for a bot that asks for message_content
        envs.append(env)

    with caplog.at_level(logging.WARNING, logger="verbatim.discord"):
        bot = await serve(settings, live, connect)
    env = envs[0]
    try:
        assert not bot.intents.message_content
        assert [r.getMessage() for r in caplog.records if r.name == "verbatim.discord"] == [MISSING_INTENT]

        channel = env.create_guild().create_text_channel("news")
        alice = env.guild.add_member(env.create_user("alice"))
        result = await alice.slash(channel, "ask", question="How many civilians were killed?")
        assert "973" in result.response.embeds[0].description
        # Discord still shows a bot the messages that mention it.
        await alice.send(channel, f"<@{bot.user.id}> Who is the interim president?")
        assert "al-Sharaa" in channel.last_message.embeds[0].description
    finally:
        await env.shutdown()
        env._raise_errors_since(env._errors_acknowledged)


async def test_discord_guild_id_syncs_commands_to_that_server(settings, live):
    guild_id = 1234567890123456789
    env = Env(create_bot(settings.model_copy(update={"discord_guild_id": guild_id}), live),
              settle_timeout=SETTLE_TIMEOUT)
    env.create_guild("Dev server", id=guild_id)
    await env.start()
    try:
        synced = [r.path for r in env.http_requests if r.method == "PUT" and r.path.endswith("/commands")]
        assert synced == [f"/applications/{env.backend.application_id}/guilds/{guild_id}/commands"]
        channel = env.guild.create_text_channel("dev")
        alice = env.guild.add_member(env.create_user("alice"))
        assert "about" in alice.available_commands(channel)
        about = await alice.slash(channel, "about")
        assert about.response.embeds[0].title == "About Verbatim"
    finally:
        await env.shutdown()
        env._raise_errors_since(env._errors_acknowledged)


async def test_about_tells_corpus_size_model_build_time_and_version(env, channel, alice, live):
    result = await alice.slash(channel, "about")
    fields = {f.name: f.value for f in result.response.embeds[0].fields}
    info = live.current.info()
    assert fields["Documents"] == "1" and fields["Passages"] == str(info.passages)
    assert info.model in fields["Model"]
    assert fields["Index built"] == info.built_at and fields["Version"] == info.version
