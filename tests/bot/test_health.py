"""HEALTH_PORT: /healthz and /metrics over loopback, from a bot running against simcord."""

from __future__ import annotations

import http.client
import json
import socket
from pathlib import Path

import aiohttp
import discord
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from simcord import Env

from bot.discord import client
from bot.discord.client import create_bot
from bot.discord.errors import StartupError, UnknownSourceError, unwrap
from bot.health import Health, serve_health
from index.engine import Engine, LiveEngine
from index.store.build import build_index
from tests.bot.conftest import SETTLE_TIMEOUT, bot_settings


async def get(server, path: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{server.port}{path}") as response:
        return response.status, response.headers["Content-Type"], await response.text()


async def healthz(server) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{server.port}/healthz") as response:
        return response.status, await response.json()


async def metrics(server) -> dict[str, float]:
    """Every sample of /metrics, keyed like `verbatim_questions_total{via="slash"}`."""
    status, content_type, text = await get(server, "/metrics")
    assert status == 200 and content_type.startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


async def test_health_and_metrics_follow_the_bot_from_loading_to_answering(settings, live):
    health = Health()
    with serve_health(settings.model_copy(update={"health_port": 0}), health) as server:
        assert server is not None and server.host == "127.0.0.1" and server.port > 0

        # Before the index is loaded (run_bot starts the server first): up, but not ready.
        status, body = await healthz(server)
        assert status == 503
        assert body == {"ready": False, "index_version": None, "documents": None, "passages": None,
                        "last_feed_poll": None}
        before = await metrics(server)
        assert before['verbatim_questions_total{via="slash"}'] == 0 and before["verbatim_ready"] == 0
        assert before["verbatim_answer_seconds_count"] == 0

        bot = create_bot(settings, live, health=health)
        env = Env(bot, settle_timeout=SETTLE_TIMEOUT)
        guild = env.create_guild("Harbour desk")
        channel = guild.create_text_channel("news")
        alice = guild.add_member(env.create_user("alice"))
        await env.start()
        try:
            status, body = await healthz(server)
            assert status == 200 and body["ready"] is True
            assert body["index_version"] == Path(live.current.info().index_dir).name
            assert body["documents"] == 1 and body["passages"] == live.current.info().passages

            answered = await alice.slash(channel, "ask", question="How many civilians were killed?")
            assert "973" in answered.response.embeds[0].description
            declined = await alice.slash(channel, "ask", question="What is the population of Damascus?")
            assert "don't say" in declined.response.embeds[0].description
            await alice.send(channel, f"<@{bot.user.id}> Who is the interim president?")
            assert "al-Sharaa" in channel.last_message.embeds[0].description
            unknown = await alice.slash(channel, "ask", question="Who?", source="no-such-article")
            assert "I have no article" in unknown.response.content
            assert [type(unwrap(e)) for e in env.errors] == [UnknownSourceError]
            health.feed_polled()  # what the feed poller calls after each round

            after = await metrics(server)
            assert after['verbatim_questions_total{via="slash"}'] == 3
            assert after['verbatim_questions_total{via="mention"}'] == 1
            assert after["verbatim_answers_total"] == 2 and after["verbatim_declines_total"] == 1
            assert after['verbatim_errors_total{kind="user"}'] == 1  # the unknown source
            assert after['verbatim_errors_total{kind="internal"}'] == 0
            assert after["verbatim_feed_polls_total"] == 1
            # Three answers timed: the histogram's count, a positive sum, and cumulative buckets.
            assert after["verbatim_answer_seconds_count"] == 3 and after["verbatim_answer_seconds_sum"] > 0
            assert after['verbatim_answer_seconds_bucket{le="+Inf"}'] == 3
            buckets = [v for k, v in after.items() if k.startswith("verbatim_answer_seconds_bucket")]
            assert len(buckets) == 13 and buckets == sorted(buckets)
            assert after["verbatim_ready"] == 1 and after["verbatim_index_documents"] == 1

            status, body = await healthz(server)
            assert body["last_feed_poll"] == health.last_feed_poll.isoformat()
        finally:
            await env.shutdown()
            env._raise_errors_since(env._errors_acknowledged)

        await bot.close()  # what `async with bot` in run_bot does when the connection ends
        status, body = await healthz(server)  # no longer ready, still telling what it served
        assert status == 503 and body["ready"] is False and body["documents"] == 1

    with pytest.raises(aiohttp.ClientConnectionError):  # the server stops with the block
        await healthz(server)


async def test_a_reindex_is_counted_and_healthz_serves_the_new_version(tmp_path, encoders):
    settings = bot_settings(tmp_path, health_port=0)  # an index of its own: a re-index writes a new version
    build_index(settings, encoders=encoders)
    live = LiveEngine(settings, Engine.load(settings, encoders=encoders))
    first_version = Path(live.current.info().index_dir).name
    health = Health()
    with serve_health(settings, health) as server:
        env = Env(create_bot(settings, live, health=health), settle_timeout=SETTLE_TIMEOUT)
        guild = env.create_guild("Harbour desk")
        channel = guild.create_text_channel("news")
        managers = guild.create_role("Managers", permissions=discord.Permissions(manage_guild=True))
        editor = guild.add_member(env.create_user("editor"), roles=[managers])
        await env.start()
        try:
            await editor.slash(channel, "reindex", full=True)
            _status, body = await healthz(server)
            counted = await metrics(server)
        finally:
            await env.shutdown()
            env._raise_errors_since(env._errors_acknowledged)
    assert counted['verbatim_reindexes_total{trigger="reindex"}'] == 1
    assert body["index_version"] == Path(live.current.info().index_dir).name != first_version


async def test_other_paths_are_not_found_and_a_sharded_bot_reports_its_shards(settings, live):
    health = Health()
    with serve_health(settings.model_copy(update={"health_port": 0}), health) as server:
        status, _type, text = await get(server, "/")
        assert status == 404 and "/healthz" in text
        create_bot(settings.model_copy(update={"shard_count": 4, "shard_ids": [2, 3]}), live, health=health)
        _status, body = await healthz(server)
        assert body["shards"] == {"count": 4, "ids": [2, 3]}


class _LoadingProbed(Exception):
    pass


def test_verbatim_run_answers_healthz_while_the_index_loads_and_stops_with_it(settings, monkeypatch):
    with socket.socket() as probe:  # a port that is free now
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    seen = []

    def load_index(_settings):
        seen.append(get_healthz(port))  # what a load balancer sees while the models and index load
        raise _LoadingProbed  # end run_bot here: what follows is tested with simcord above

    monkeypatch.setattr(client.LiveEngine, "open", load_index)
    for logging_setup in ("configure_logging", "_redact_in_logs"):  # process-wide; not what this test is about
        monkeypatch.setattr(client, logging_setup, lambda *_args: None)
    running = settings.model_copy(update={"health_port": port, "discord_token": SecretStr("not-used")})
    with pytest.raises(_LoadingProbed):
        client.run_bot(running)
    assert seen == [(503, {"ready": False, "index_version": None, "documents": None, "passages": None,
                           "last_feed_poll": None})]
    with pytest.raises(ConnectionRefusedError):  # run_bot stopped the server on its way out
        get_healthz(port)


def get_healthz(port: int) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/healthz")
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_without_health_port_nothing_listens(settings):
    with serve_health(settings, Health()) as server:
        assert settings.health_port is None and server is None


def test_a_health_port_in_use_is_one_clear_line(settings):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(StartupError) as caught, serve_health(settings.model_copy(update={"health_port": port}),
                                                                 Health()):
            pass
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message and "HEALTH_PORT" in message and "\n" not in message


def test_two_bots_count_apart(settings, live):
    first, second = create_bot(settings, live), create_bot(settings, live)
    first.health.asked("slash")
    asked = {"via": "slash"}
    assert first.health.metrics.registry.get_sample_value("verbatim_questions_total", asked) == 1
    assert second.health.metrics.registry.get_sample_value("verbatim_questions_total", asked) == 0
