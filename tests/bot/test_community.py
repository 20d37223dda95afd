"""Feedback buttons, /feedback, /config, thread follow-ups and forum posts, against the real engine over
the seed article and a real database in a data folder of each test's own."""

from __future__ import annotations

import discord
import pytest
from simcord import SetupError
from simcord.builders import ChannelHandle

from bot.discord.client import create_bot
from bot.discord.errors import unwrap
from index.feedback import FeedbackStore
from index.state import connect_state
from tests.bot.conftest import embed_text, wait_until

QUESTION = "How many civilians were killed?"


@pytest.fixture
def settings(bot_index, tmp_path):
    """The session's index, but votes and servers' settings in this test's own data folder."""
    return bot_index.model_copy(update={"data_dir": tmp_path / "var"})


@pytest.fixture
def admin(env, guild):
    managers = guild.create_role("Managers", permissions=discord.Permissions(manage_guild=True))
    return guild.add_member(env.create_user("carol"), roles=[managers])


def custom_ids(message: discord.Message) -> dict[str, str]:
    """The answer's buttons by what they show (label or emoji) → their custom ids."""
    return {child.label or str(child.emoji): child.custom_id for row in message.components for child in row.children}


def votes(settings) -> list[tuple[str, str | None]]:
    store = FeedbackStore(connect_state(settings.data_dir))
    return [(row.vote, row.reason) for row in store.export()]


async def ask(member, channel, question: str = QUESTION):
    result = await member.slash(channel, "ask", question=question)
    return result, result.response.message


# ---------------------------------------------------------------- feedback


async def test_a_vote_is_stored_and_changed_and_a_down_vote_asks_why(env, settings, channel, alice, bob):
    _result, answer = await ask(alice, channel)
    buttons = custom_ids(answer)
    assert list(buttons) == ["Show quotes", "👍", "👎"]

    up = await alice.click(answer, custom_id=buttons["👍"])
    assert up.ephemeral and up.response.content == "Thanks: your 👍 is recorded."
    assert votes(settings) == [("up", None)]

    # Clicking 👎 changes the vote at once, and offers a form for the reason.
    down = await alice.click(answer, custom_id=buttons["👎"])
    assert down.modal is not None and votes(settings) == [("down", None)]
    submitted = await alice.submit_modal(down, {"reason": "It quotes   the **older** figure @everyone"})
    assert submitted.ephemeral and "👎 is recorded" in submitted.response.content
    assert votes(settings) == [("down", "It quotes the **older** figure @everyone")]  # still one vote from alice

    await bob.click(answer, custom_id=buttons["👍"])
    assert sorted(votes(settings)) == [("down", "It quotes the **older** figure @everyone"), ("up", None)]
    rows = FeedbackStore(connect_state(settings.data_dir)).export()
    assert {r.question for r in rows} == {QUESTION} and {r.guild_id for r in rows} == {channel.guild.id}
    assert all("973" in r.answer and r.citations for r in rows)


async def test_buttons_work_after_a_restart_and_old_answers_say_so(env, settings, live, channel, alice):
    _result, answer = await ask(alice, channel)
    buttons = custom_ids(answer)

    await env.restart_bot(create_bot(settings, live))  # a new process: nothing of the old bot's memory is left

    voted = await alice.click(answer, custom_id=buttons["👍"])
    assert voted.response.content == "Thanks: your 👍 is recorded." and votes(settings) == [("up", None)]
    quotes = await alice.click(answer, label="Show quotes")
    assert quotes.ephemeral and "973 civilians" in embed_text(quotes.response.embeds)

    # Past the retention the buttons answer politely instead of failing.
    store = FeedbackStore(connect_state(settings.data_dir))
    store.conn.execute("UPDATE feedback_answers SET created_at = '2020-01-01T00:00:00+00:00'")
    late = await alice.click(answer, custom_id=buttons["👎"])  # the form opens first: no database before it
    told = await alice.submit_modal(late, {"reason": "late"})
    assert told.ephemeral and "too old to rate" in told.response.content
    gone = await alice.click(answer, label="Show quotes")
    assert gone.ephemeral and "its quotes are no longer kept" in gone.response.content
    assert votes(settings) == [("up", None)]


async def test_feedback_summary_is_for_managers_and_escapes_reasons(env, settings, guild, channel, alice, admin):
    _result, answer = await ask(alice, channel)
    down = await alice.click(answer, custom_id=custom_ids(answer)["👎"])
    await alice.submit_modal(down, {"reason": "**wrong** <@&123> @everyone"})

    with pytest.raises(SetupError, match="not visible"):
        await alice.slash(channel, "feedback")
    summary = await admin.slash(channel, "feedback")
    assert summary.ephemeral
    text = embed_text(summary.response.embeds)
    assert "👍 0  ·  👎 1  ·  1 answer rated" in text
    assert r"\*\*wrong\*\*" in text and QUESTION in text  # shown as typed, never rendered
    assert summary.response.message.mention_everyone is False


# ---------------------------------------------------------------- /config


async def test_config_is_refused_without_manage_server(env, guild, channel, alice):
    assert not any(name.startswith("config") for name in alice.available_commands(channel))
    command = env.backend.find_command("config", None, type=1)
    guild.set_command_permissions(int(command["id"]), {alice: True})  # a server shows it to her anyway

    refused = await alice.slash(channel, "config visibility", value="ephemeral")
    assert refused.ephemeral and "needs the Manage Server permission" in refused.response.content
    assert [type(e).__name__ for e in env.errors] == ["MissingPermissions"]
    assert env.bot.server_config(guild.id).visibility == "public"  # nothing changed


async def test_config_show_marks_what_comes_from_the_environment(env, settings, guild, channel, admin):
    shown = await admin.slash(channel, "config show")
    text = embed_text(shown.response.embeds)
    assert shown.ephemeral and text.count("default (environment)") == 6

    changed = await admin.slash(channel, "config budget", questions=3, window_seconds=120)
    text = embed_text(changed.response.embeds)
    assert "Question budget · set for this server\n3 questions per member every 120 seconds" in text
    assert text.count("default (environment)") == 5
    announcements = guild.create_text_channel("new-articles")
    await admin.slash(channel, "config announcements", channel=announcements)
    assert env.bot.server_config(guild.id).announcement_channel == announcements.id  # what the Feeds cog reads
    reset = await admin.slash(channel, "config reset", setting="question_budget")
    assert reset.response.content == "Question budget: back to the default."
    assert env.bot.server_config(guild.id).overridden == {"announcement_channel"}
    await admin.slash(channel, "config reset", setting="all")
    assert env.bot.server_config(guild.id).overridden == frozenset()


async def test_each_server_answers_mentions_in_its_own_channels(env, guild, channel, alice, admin):
    ask_here = guild.create_text_channel("ask-here")
    set_ = await admin.slash(channel, "config channels", channels=f"{ask_here.mention}")
    assert "Mentions are now answered in" in set_.response.content
    other = env.create_guild("Other Newsroom")
    other_channel = other.create_text_channel("general")
    dana = other.add_member(env.create_user("dana"))
    me = env.bot.user

    await alice.send(channel, f"<@{me.id}> {QUESTION}")
    assert channel.last_message.author.id == alice.id  # not an answer channel on this server
    await alice.send(ask_here, f"<@{me.id}> {QUESTION}")
    assert "973" in ask_here.last_message.embeds[0].description
    # The other server keeps the environment's default: every channel.
    await dana.send(other_channel, f"<@{me.id}> {QUESTION}")
    assert "973" in other_channel.last_message.embeds[0].description

    refused = await admin.slash(channel, "config channels", channels="general")
    assert "Name the channels by mentioning them" in refused.response.content
    assert [type(unwrap(e)).__name__ for e in env.errors] == ["ServerSettingError"]  # through the one error handler


async def test_an_ephemeral_server_shows_answers_to_the_asker_only(env, guild, channel, alice, bob, admin):
    await admin.slash(channel, "config visibility", value="ephemeral")

    result, answer = await ask(alice, channel)
    # Deferred first, privately: the deferral decides who sees the reply that replaces it.
    callbacks = [r.json for r in env.http_requests if r.method == "POST" and "/interactions/" in r.path]
    assert callbacks[-1]["type"] == 5 and callbacks[-1]["data"]["flags"] & 64
    assert result.ephemeral
    assert "973" in result.response.embeds[0].description
    assert answer.id not in [m.id for m in channel.history(viewer=bob)]
    assert answer.id in [m.id for m in channel.history(viewer=alice)]
    voted = await alice.click(answer, custom_id=custom_ids(answer)["👍"])  # the asker can still rate it
    assert "👍 is recorded" in voted.response.content
    # A mention cannot be answered privately: it is answered in the channel.
    await alice.send(channel, f"<@{env.bot.user.id}> {QUESTION}")
    assert "973" in channel.history(viewer=bob)[-1].embeds[0].description


async def test_a_server_can_limit_its_sources(env, guild, channel, admin, alice):
    refused = await admin.slash(channel, "config sources", sources="Pravda Nowhere")
    assert "No indexed article has the id or outlet 'Pravda Nowhere'" in refused.response.content
    assert [type(unwrap(e)).__name__ for e in env.errors] == ["ServerSettingError"]
    done = await admin.slash(channel, "config sources", sources="the times of israel")
    assert "Sources · set for this server\n`the times of israel`" in embed_text(done.response.embeds)
    result, _answer = await ask(alice, channel)
    assert result.response.embeds[-1].footer.text.startswith("Searched the 1 article this server uses")


# ---------------------------------------------------------------- threads and forums


def thread_handle(env, guild, thread) -> ChannelHandle:
    return ChannelHandle(env, guild, thread)


async def test_a_follow_up_in_a_thread_from_an_answer_uses_its_question(env, guild, channel, alice):
    me = env.bot.user
    _result, answer = await ask(alice, channel, "How many Syrian security forces were killed?")
    assert "125" in answer.embeds[0].description
    # alice opens a thread on the answer (the thread takes the answer's id, as in Discord).
    thread = thread_handle(env, guild, env.backend.create_thread(channel.id, "More on this", alice.id,
                                                                  message_id=answer.id))
    await env.settle()

    # Alone, "them" would be the civilians (973); in this thread it is the security forces.
    await alice.send(thread, f"<@{me.id}> How many of them were killed?")
    follow_up = thread.last_message
    assert follow_up.author.id == me.id and follow_up.reference.message_id != answer.id
    assert "125 members of the Syrian security forces" in follow_up.embeds[0].description


async def test_a_thread_remembers_the_questions_answered_in_it(env, guild, channel, alice):
    me = env.bot.user
    thread = thread_handle(env, guild, env.backend.create_thread(channel.id, "Casualties", alice.id))
    await env.settle()
    await alice.send(thread, f"<@{me.id}> How many Syrian security forces were killed?")
    await alice.send(thread, "unrelated chatter between members")
    await alice.send(thread, f"<@{me.id}> How many of them were killed?")
    assert "125 members of the Syrian security forces" in thread.last_message.embeds[0].description

    # In the channel itself, with no thread around it, the same words are about the civilians.
    await alice.send(channel, f"<@{me.id}> How many of them were killed?")
    assert "973" in channel.last_message.embeds[0].description


async def post_in_forum(env, guild, forum, member, title: str, body: str, tags: list[int]) -> ChannelHandle:
    """A member's forum post as Discord delivers it: the thread, then its first message."""
    backend = env.backend
    thread = backend.create_thread(forum.id, title, member.id, applied_tags=tags, broadcast=False)
    starter = backend.create_message(thread.id, member.id, body, broadcast=False)
    backend.announce_thread_create(thread)
    backend.announce_message_create(starter)
    await env.settle()
    return thread_handle(env, guild, thread)


async def test_a_forum_post_with_the_configured_tag_is_answered(env, guild, channel, alice, admin):
    forum = guild.create_forum_channel("ask-the-news")
    question_tag, chat_tag = env.backend.snowflake(), env.backend.snowflake()
    env.backend.channels[forum.id].available_tags = [
        {"id": str(tag), "name": name, "moderated": False, "emoji_id": None, "emoji_name": None}
        for tag, name in ((question_tag, "Question"), (chat_tag, "Chat"))
    ]
    env.backend.announce_channel_update(forum.id)
    await env.settle()

    # No forum tag is configured by default: posts are left alone.
    quiet = await post_in_forum(env, guild, forum, alice, "Casualty figures", QUESTION, [question_tag])
    assert [m.author.id for m in quiet.history()] == [alice.id]

    await admin.slash(channel, "config forum-tag", tag="question")
    untagged = await post_in_forum(env, guild, forum, alice, "Hello all", "Just saying hi", [chat_tag])
    assert [m.author.id for m in untagged.history()] == [alice.id]

    post = await post_in_forum(env, guild, forum, alice, "Civilian deaths",
                               "How many civilians were killed since March 6?", [question_tag])
    answer = post.last_message
    assert answer.author.id == env.bot.user.id
    assert "973" in answer.embeds[0].description and "👍" in custom_ids(answer)


# ---------------------------------------------------------------- review fixes


async def test_answer_buttons_leave_nothing_in_discords_view_store(env, channel, alice):
    import gc
    import warnings

    store = env.bot._connection._view_store
    for _ in range(3):
        _result, answer = await ask(alice, channel)
    gc.collect()
    # Clicks are routed by the buttons' custom ids alone: no view per answer is kept, whatever its kind.
    assert store._views == {} and store._synced_message_views == {} and store.persistent_views == []
    with warnings.catch_warnings():  # asking torch's lazy objects for their class warns of a deprecation
        warnings.simplefilter("ignore", FutureWarning)
        views = [o for o in gc.get_objects() if isinstance(o, discord.ui.View)]
    assert not views
    voted = await alice.click(answer, custom_id=custom_ids(answer)["👍"])  # and the buttons still work
    assert voted.response.content == "Thanks: your 👍 is recorded."


async def test_a_down_vote_opens_the_form_before_the_database_is_touched(env, settings, channel, alice):
    import sqlite3
    import threading

    from index.state import state_path

    _result, answer = await ask(alice, channel)
    # Another process holds the database's write lock for a while (a feed poll storing its items, say).
    holder = sqlite3.connect(state_path(settings.data_dir), isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    form_first: list[bool] = []

    def release() -> None:
        form_first.append(any(r.json and r.json.get("type") == 9 for r in list(env.http_requests)
                              if "/interactions/" in r.path))
        holder.execute("COMMIT")

    timer = threading.Timer(1.5, release)
    timer.start()
    try:
        down = await alice.click(answer, custom_id=custom_ids(answer)["👎"])
    finally:
        timer.join()
        holder.close()
    assert down.modal is not None
    assert form_first == [True]  # the form was open while the lock was still held
    await wait_until(lambda: votes(settings) == [("down", None)])  # then the 👎 counted, once
    submitted = await alice.submit_modal(down, {"reason": "older figure"})
    assert "👎 is recorded" in submitted.response.content
    assert votes(settings) == [("down", "older figure")]


async def test_a_refused_question_in_a_thread_reads_no_history(env, guild, channel, alice, admin):
    me = env.bot.user
    await admin.slash(channel, "config budget", questions=1, window_seconds=600)
    thread = thread_handle(env, guild, env.backend.create_thread(channel.id, "Casualties", alice.id))
    await env.settle()

    def history_reads() -> int:
        return sum(1 for r in env.http_requests if r.method == "GET" and f"/channels/{thread.id}/messages" in r.path)

    await alice.send(thread, f"<@{me.id}>")  # nothing asked: a hint, no history
    assert "Ask me something after the mention" in thread.last_message.content and history_reads() == 0
    await alice.send(thread, f"<@{me.id}> How many Syrian security forces were killed?")
    assert "125" in thread.last_message.embeds[0].description
    read = history_reads()
    await alice.send(thread, f"<@{me.id}> How many of them were killed?")
    assert "you can ask again" in thread.last_message.content
    assert history_reads() == read  # the budget refused it before any history request


async def test_check_and_timeline_follow_the_servers_visibility_budget_and_metrics(env, guild, channel, alice, bob,
                                                                                   admin):
    await admin.slash(channel, "config visibility", value="ephemeral")
    await admin.slash(channel, "config budget", questions=2, window_seconds=600)
    metrics = env.bot.health.metrics.registry

    checked = await alice.slash(channel, "check", claim="More than 973 civilians were killed.")
    assert checked.ephemeral and "Supported" in embed_text(checked.response.embeds)
    assert checked.response.message.id not in [m.id for m in channel.history(viewer=bob)]
    timeline = await alice.slash(channel, "timeline", topic="civilians killed")
    assert timeline.ephemeral and timeline.response.embeds[0].title.startswith("Timeline: civilians killed")
    assert "searched the 1 indexed article" in timeline.response.embeds[-1].footer.text
    for via in ("check", "timeline"):
        assert metrics.get_sample_value("verbatim_questions_total", {"via": via}) == 1

    refused = await alice.slash(channel, "timeline", topic="civilians killed")  # the third question in the window
    assert refused.ephemeral and "you can ask again" in refused.response.content
    assert metrics.get_sample_value("verbatim_questions_total", {"via": "timeline"}) == 1
    assert [type(unwrap(e)).__name__ for e in env.errors] == ["CommandOnCooldown"]


async def test_a_forum_post_that_fails_is_counted(env, guild, channel, alice, admin):
    forum = guild.create_forum_channel("ask-the-news")
    tag = env.backend.snowflake()
    env.backend.channels[forum.id].available_tags = [
        {"id": str(tag), "name": "Question", "moderated": False, "emoji_id": None, "emoji_name": None}]
    env.backend.announce_channel_update(forum.id)
    await admin.slash(channel, "config forum-tag", tag="question")
    errors = env.bot.health.metrics.registry

    post = await post_in_forum(env, guild, forum, alice, "@everyone", "@here", [tag])  # nothing to ask
    reply = post.last_message
    assert reply.author.id == env.bot.user.id and reply.embeds == []
    assert errors.get_sample_value("verbatim_errors_total", {"kind": "user"}) == 1
