"""/feeds add|list|remove for Manage Server, the background poll and its announcements, and "also
reported by" under an answer: against simcord, a loopback feed server and the real engine."""

from __future__ import annotations

import discord
import pytest
from simcord import SetupError

from bot.discord.client import create_bot
from bot.discord.errors import unwrap
from index.engine import Engine, LiveEngine
from index.sources.feeds import FeedError, open_registry
from index.store.build import build_index
from tests.bot.conftest import bot_settings, embed_text
from tests.index.feed_support import FeedSite, outlets_site, paragraphs, rss, xml


@pytest.fixture
def site():
    with outlets_site() as base:
        yield base


@pytest.fixture
def own_settings(tmp_path, encoders):
    settings = bot_settings(tmp_path, fetch_allowed_networks=["127.0.0.1/32"], fetch_timeout_seconds=5,
                            feed_announce_max=3)
    build_index(settings, encoders=encoders)
    return settings


@pytest.fixture
def own_live(own_settings, encoders):
    return LiveEngine(own_settings, Engine.load(own_settings, encoders=encoders))


@pytest.fixture
def simcord_bot(own_settings, own_live):
    return create_bot(own_settings, own_live)


async def next_tick(env):
    """Let the bot's feed schedule run once, as it does every `feed_poll_seconds` (simcord's clock)."""
    await env.advance_time(env.bot.feed_poll_seconds)


@pytest.fixture
def admin(env, guild):
    managers = guild.create_role("Managers", permissions=discord.Permissions(manage_guild=True))
    return guild.add_member(env.create_user("carol"), roles=[managers])


def followed(settings):
    with open_registry(settings.data_dir) as registry:
        return registry.feeds()


def bot_messages(env, channel):
    """What the bot posted in the channel itself (not its replies to commands, which go by webhook)."""
    return [m for m in env.backend.messages.get(channel.id, {}).values()
            if m.author_id == env.bot.user.id and m.interaction_metadata is None and not m.is_ephemeral]


async def test_feeds_commands_need_manage_server(env, guild, channel, alice, own_settings, site):
    assert not any(name.startswith("feeds") for name in alice.available_commands(channel))
    with pytest.raises(SetupError, match="not visible"):
        await alice.slash(channel, "feeds add", url=f"{site}/courier/feed.xml")

    # A server may show the commands to someone anyway (a per-user override): the check still refuses.
    command = env.backend.find_command("feeds", None, type=1)
    guild.set_command_permissions(int(command["id"]), {alice: True})
    for name, options in [("feeds add", {"url": f"{site}/courier/feed.xml"}), ("feeds list", {}),
                          ("feeds remove", {"url": f"{site}/courier/feed.xml"})]:
        result = await alice.slash(channel, name, **options)
        assert result.ephemeral and "needs the Manage Server permission" in result.response.content
    assert [type(e).__name__ for e in env.errors] == ["MissingPermissions"] * 3
    assert followed(own_settings) == []


async def test_feeds_add_list_and_remove(env, guild, channel, admin, own_settings, site):
    url = f"{site}/courier/feed.xml"
    added = await admin.slash(channel, "feeds add", url=url + "?utm_source=discord", every=15, channel=channel)
    assert added.ephemeral
    assert added.response.content == (f"Following {url}: polled every 15 minutes. "
                                      f"New articles will be announced in <#{channel.id}>.")
    [feed] = followed(own_settings)
    assert (feed.url, feed.every_minutes, feed.channel_id) == (url, 15, channel.id)

    assert followed(own_settings)[0].items_added == 0
    await next_tick(env)
    assert followed(own_settings)[0].items_added == 2  # the background poll took it
    listed = await admin.slash(channel, "feeds list")
    card = listed.response.embeds[0]
    assert listed.ephemeral and card.title == "Followed feeds"
    assert card.fields[0].name == "Marrowby Courier"
    assert url in card.fields[0].value and "every 15 min · 2 added" in card.fields[0].value
    assert "last success: 20" in card.fields[0].value

    bad = await admin.slash(channel, "feeds add", url="not a feed")
    assert "not a web address" in bad.response.content

    removed = await admin.slash(channel, "feeds remove", url=url)
    assert removed.response.content == f"No longer following {url}; its 2 articles stay."
    assert followed(own_settings) == []
    empty = await admin.slash(channel, "feeds list")
    assert "No feeds are followed" in empty.response.embeds[0].description
    missing = await admin.slash(channel, "feeds remove", url=url)
    assert "No feed" in missing.response.content and missing.ephemeral
    assert [type(unwrap(e)) for e in env.errors] == [FeedError, FeedError]


async def test_new_articles_are_announced_without_pinging_anyone(env, guild, channel, admin, bob, own_settings,
                                                                  own_live, site):
    role = guild.create_role("Subscribers", mentionable=True)
    titles = [f"@everyone <@&{role.id}> Harbour notice {n}: berth {n} closes for *dredging*" for n in range(1, 6)]
    items = [{"title": title, "link": f"{site}/harbour/notice-{n}", "date": f"Tue, 0{n} Apr 2025 08:00:00 GMT",
              "content": paragraphs(f"The Marrowby harbour master said berth {n} will close for dredging "
                                    f"for {n + 2} days from the {n}th of April. Fishing boats will use berth "
                                    f"{n + 10} meanwhile")}
             for n, title in enumerate(titles, start=1)]
    FeedSite.routes["/harbour/feed.xml"] = xml(rss("@here Harbour <@&1> Office", items, base=site))

    await admin.slash(channel, "feeds add", url=f"{site}/harbour/feed.xml", channel=channel)
    assert bot_messages(env, channel) == []
    # The background poll fetches, indexes and announces on its own schedule.
    await next_tick(env)
    # Answers were never blocked, and the swapped-in index knows the new articles.
    answer = await bob.slash(channel, "ask", question="How many days will berth 4 close for dredging?")
    assert "6 days" in answer.response.embeds[0].description

    [message] = bot_messages(env, channel)
    assert message.content == r"New from \@here Harbour \<\@&1> Office (and 2 more):"
    embeds = [discord.Embed.from_dict(e) for e in message.embeds]
    assert len(embeds) == 3
    assert embeds[0].title == rf"\@everyone \<\@&{role.id}> Harbour notice 1: berth 1 closes for \*dredging\*"
    assert embeds[0].description == "\n".join([r"\@here Harbour \<\@&1> Office, 2025-04-01",
                                               f"{site}/harbour/notice-1"])
    assert not message.mention_everyone and message.ping_role_ids == [] and message.ping_user_ids == []
    posts = [r.json for r in env.http_requests
             if r.method == "POST" and isinstance(r.json, dict) and "embeds" in r.json
             and f"/channels/{channel.id}/messages" in r.path]
    assert posts and all(p.get("allowed_mentions", {}).get("parse") == [] for p in posts)


async def test_an_answer_says_which_other_outlets_reported_the_story(env, channel, admin, bob, own_settings, site):
    await admin.slash(channel, "feeds add", url=f"{site}/courier/feed.xml")
    await next_tick(env)
    await admin.slash(channel, "feeds add", url=f"{site}/gazette/atom.xml")
    await next_tick(env)
    assert [feed.items_added for feed in followed(own_settings)] == [2, 1]

    answer = await bob.slash(channel, "ask", question="What did the landing stage repairs at Kestrel Point cost?")
    shown = embed_text(answer.response.embeds)
    assert "38,000 crowns" in shown
    assert "Marrowby Courier, 2025-03-03 · also reported by Eastfen Gazette, 2025-03-04" in shown


async def test_feeds_list_shows_a_failing_feed(env, channel, admin, own_settings, site):
    FeedSite.routes["/broken/feed.xml"] = (503, {"Content-Type": "text/plain"}, b"down", 0.0)
    await admin.slash(channel, "feeds add", url=f"{site}/broken/feed.xml", every=5)
    await next_tick(env)
    await next_tick(env)

    listed = await admin.slash(channel, "feeds list")
    field = listed.response.embeds[0].fields[0]
    assert field.name == "(not polled yet)"
    assert "(1 failed in a row): " in field.value and "HTTP 503" in field.value
    # Backed off: polled once, not again at every tick of the schedule.
    polls = [r for r in FeedSite.seen if r["path"] == "/broken/feed.xml"]
    assert len(polls) == 1


async def test_a_channel_that_is_gone_does_not_stop_the_poll(env, channel, admin, own_settings, site):
    with open_registry(own_settings.data_dir) as registry:  # as `verbatim feeds add --channel` would
        registry.add(f"{site}/courier/feed.xml", every_minutes=30, channel_id=424242424242424242)
    await next_tick(env)
    assert followed(own_settings)[0].items_added == 2
    assert bot_messages(env, channel) == []
    assert followed(own_settings)[0].channel_id == 424242424242424242
    # A feed followed from the terminal is the operator's, not this server's: /feeds list leaves it out.
    listed = await admin.slash(channel, "feeds list")
    assert "No feeds are followed" in listed.response.embeds[0].description


# ---------------------------------------------------------------- review fixes


async def test_new_articles_go_to_the_servers_announcement_channel_and_the_feeds_own_once_each(
        env, guild, channel, admin, own_settings, site):
    announcements = guild.create_text_channel("new-articles")
    await admin.slash(channel, "config announcements", channel=announcements)
    # The Courier names its own channel; the Gazette names the announcement channel itself.
    await admin.slash(channel, "feeds add", url=f"{site}/courier/feed.xml", channel=channel)
    await admin.slash(channel, "feeds add", url=f"{site}/gazette/atom.xml", channel=announcements)
    await next_tick(env)

    assert [m.content for m in bot_messages(env, channel)] == ["New from Marrowby Courier:"]
    assert sorted(m.content for m in bot_messages(env, announcements)) == [
        "New from Eastfen Gazette:", "New from Marrowby Courier:"]  # the Gazette once, though named twice


async def test_a_server_sees_and_removes_only_its_own_feeds(env, guild, channel, admin, own_settings, site):
    url = f"{site}/courier/feed.xml"
    await admin.slash(channel, "feeds add", url=url, channel=channel)
    other = env.create_guild("Other Newsroom")
    other_channel = other.create_text_channel("general")
    managers = other.create_role("Editors", permissions=discord.Permissions(manage_guild=True))
    dana = other.add_member(env.create_user("dana"), roles=[managers])

    listed = await dana.slash(other_channel, "feeds list")
    assert "No feeds are followed" in listed.response.embeds[0].description
    assert str(channel.id) not in embed_text(listed.response.embeds)  # nor the other server's channel
    removed = await dana.slash(other_channel, "feeds remove", url=url)
    assert removed.response.content.startswith(f"No feed {url} is followed by this server;")
    taken = await dana.slash(other_channel, "feeds add", url=url, every=5)
    assert "already followed" in taken.response.content and "/config sources" in taken.response.content
    [feed] = followed(own_settings)  # the terminal (the operator's tool) sees every server's feeds
    assert (feed.guild_id, feed.channel_id, feed.every_minutes) == (guild.id, channel.id, 30)
    assert [type(unwrap(e)) for e in env.errors] == [FeedError, FeedError]

    mine = await admin.slash(channel, "feeds list")
    assert mine.response.embeds[0].fields[0].value.startswith(url)


async def test_the_poll_runs_on_the_bots_background_threads(env, channel, admin, own_live, site, monkeypatch):
    import threading

    threads = []
    real = own_live.poll_feeds

    def poll(**options):
        threads.append(threading.current_thread().name)
        return real(**options)

    monkeypatch.setattr(own_live, "poll_feeds", poll)  # the real poll, watched: where does it run?
    await admin.slash(channel, "feeds add", url=f"{site}/courier/feed.xml")
    await next_tick(env)
    assert followed(env.bot.settings)[0].items_added == 2
    assert threads and all(name.startswith("verbatim-background") for name in threads)


@pytest.mark.parametrize("values", [{"feed_polling": False}, {"shard_count": 2, "shard_ids": [1]}])
async def test_only_one_process_polls_feeds(own_settings, own_live, site, values):
    from simcord import Env

    from tests.bot.conftest import SETTLE_TIMEOUT

    with open_registry(own_settings.data_dir) as registry:
        registry.add(f"{site}/courier/feed.xml", every_minutes=1)
    bot = create_bot(own_settings.model_copy(update=values), own_live)
    assert not bot.polls_feeds
    env = Env(bot, settle_timeout=SETTLE_TIMEOUT)
    env.create_guild("Valley desk", **({"shard_id": 1} if "shard_ids" in values else {}))
    await env.start()
    try:
        await env.advance_time(bot.feed_poll_seconds * 3)
        assert followed(own_settings)[0].items_added == 0 and FeedSite.seen == []
        assert not bot.get_cog("Feeds").schedule.is_running()
    finally:
        await env.shutdown()
        env._raise_errors_since(env._errors_acknowledged)
    for polls in ({"shard_count": 2, "shard_ids": [0]}, {"shard_count": 2}, {}):
        assert create_bot(own_settings.model_copy(update=polls), own_live).polls_feeds
