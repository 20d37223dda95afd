"""Written answers in Discord (ANSWER_MODE=llm): the model's checked sentences first, the quotes under
"Show quotes", the footer saying whose words are whose, and long generations shown as they stream, only
ever with sentences that passed their checks. Real engine over invented articles, a local fake model."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import pytest

from bot.discord.formatting import ANSWER_FOOTER_PREFIX, unescape
from bot.discord.streaming import answer_as_written
from index.answers.compose import WRITTEN_NOTE, Answer
from index.engine import Engine, LiveEngine
from index.store.build import build_index
from tests.bot.conftest import assert_fits, bot_settings, embed_text
from tests.index.llm_support import ARTICLES, QUESTION, fake_model, llm_settings, write_corpus

VELMORA = " ".join(ARTICLES["velmora-flood"][3].split())


@pytest.fixture(scope="module")
def model_server():
    with fake_model() as server:
        yield server


@pytest.fixture(scope="module")
def invented_index(tmp_path_factory, encoders):
    root = tmp_path_factory.mktemp("bot-llm-index")
    write_corpus(root / "corpus")
    settings = bot_settings(root)
    build_index(settings, encoders=encoders)
    return settings


@pytest.fixture
def settings(invented_index, model_server, request):  # overrides conftest's: the model named by the test
    return llm_settings(invented_index, model_server, getattr(request, "param", "faithful"))


@pytest.fixture
def live(settings, encoders):  # overrides conftest's: an engine in llm mode
    return LiveEngine(settings, Engine.load(settings, encoders=encoders))


def webhook_requests(env) -> list:
    return [r for r in env.http_requests if "/webhooks/" in r.path]


async def test_written_answer_comes_first_with_the_footer_and_the_quotes_under_the_button(env, channel, alice):
    result = await alice.slash(channel, "ask", question=QUESTION)

    embeds = result.response.embeds
    assert_fits(result.response.content, embeds)
    body = embeds[0].description
    assert body.startswith("Mayor Ilsa Brandt said one thousand two hundred residents were moved")
    assert "[1]" in body and "[2]" in body
    footer = embeds[-1].footer.text
    assert footer.startswith(ANSWER_FOOTER_PREFIX) and footer.endswith(WRITTEN_NOTE)
    assert "Show quotes" in json.dumps(result.response.components)

    shown = await alice.click(result.response, label="Show quotes")
    quotes = [unescape(part.split("”", 1)[0]) for part in embed_text(shown.response.embeds).split("“")[1:]]
    assert any("1,200 residents" in q for q in quotes)
    assert all(q in VELMORA for q in quotes)  # the quotes are the source's own words


@pytest.mark.parametrize("settings", ["slow-stream"], indirect=True)
async def test_a_streamed_answer_is_edited_in_sentence_by_sentence_and_never_shows_a_failed_one(env, channel, alice):
    result = await alice.slash(channel, "ask", question=QUESTION)

    sent = webhook_requests(env)
    posts = [r for r in sent if r.method == "POST"]
    edits = [r for r in sent if r.method == "PATCH"]
    # First the opening sentence alone, then an edit adding the third (the second failed its check),
    # then the final answer in place, with its button.
    first = posts[0].json["embeds"][0]["description"]
    assert first.startswith("Mayor Ilsa Brandt said 1,200 residents") and "[2]" not in first
    assert len(posts) == 1 and len(edits) == 2
    assert "12 April" in edits[0].json["embeds"][0]["description"]
    assert "components" in edits[-1].json and edits[-1].json["components"]
    for request in sent:  # nothing unchecked ever went to Discord
        assert "Petra Lund" not in json.dumps(request.json)
    final = result.response.embeds
    assert "12 April" in final[0].description and final[-1].footer.text.endswith(WRITTEN_NOTE)
    assert " ms · " in final[-1].footer.text  # the whole answer's time, once it is done


@pytest.mark.parametrize("settings", ["error"], indirect=True)
async def test_a_failing_model_gives_the_quoted_answer_without_a_word_to_the_user(env, channel, alice):
    result = await alice.slash(channel, "ask", question=QUESTION)

    embeds = result.response.embeds
    assert "1,200 residents were moved to the sports hall overnight" in embeds[0].description
    assert WRITTEN_NOTE not in embeds[-1].footer.text and "500" not in embed_text(embeds)
    assert not env.errors


@pytest.mark.parametrize("settings", ["slow-stream"], indirect=True)
async def test_a_mention_is_answered_with_the_written_answer_too(env, channel, alice):
    await alice.send(channel, f"<@{env.bot.user.id}> {QUESTION}")

    reply = channel.last_message
    assert reply.author.id == env.bot.user.id
    assert "12 April" in reply.embeds[0].description and "Petra Lund" not in reply.embeds[0].description
    assert reply.embeds[-1].footer.text.endswith(WRITTEN_NOTE)
    assert any(c.label == "Show quotes" for row in reply.components for c in row.children)


class Screen:
    """A reply as readers see it over time: (when, text) of the first message and of each edit."""

    def __init__(self) -> None:
        self.shown: list[tuple[float, str]] = []

    async def send(self, first, kwargs):
        await self.edit(**kwargs)
        return self

    async def edit(self, **kwargs):
        self.shown.append((time.perf_counter(), kwargs["embeds"][0].description))


def written(n: int) -> Answer:
    """A written answer of `n` sentences, as the model hands them over."""
    return Answer("q", True, " ".join(f"Sentence number {i}. [1]" for i in range(1, n + 1)), [], "en", mode="llm")


async def post_final(final, scope, send_first):
    await send_first(True, {"embeds": [SimpleNamespace(description=final.text + " (final)")]})


async def test_while_writing_edits_come_at_most_once_an_interval():
    """Sentences handed over in a burst are held back and shown together when the interval is over."""
    screen = Screen()

    def ask(on_written):
        for n in range(1, 6):  # five sentences within a quarter of a second
            on_written(written(n))
            time.sleep(0.05)
        time.sleep(1.5)
        return written(5)

    await answer_as_written(ask, "scope", screen.send, post_final, interval=1.0)

    assert [text.count("Sentence") for _, text in screen.shown] == [1, 5, 5]
    assert screen.shown[-1][1].endswith("(final)")
    # The held-back sentences came when the interval was over, not with the final answer.
    assert 1.0 <= screen.shown[1][0] - screen.shown[0][0] < 1.4


async def test_a_held_back_sentence_needs_no_free_thread():
    """Waiting out the edit interval holds no worker thread: with every thread of the default pool busy
    (a feed poll in one, the model's answer in the other), the held-back sentences still come on time."""
    import asyncio
    import threading
    from concurrent.futures import ThreadPoolExecutor

    loop = asyncio.get_running_loop()
    pool = ThreadPoolExecutor(2)
    loop.set_default_executor(pool)
    busy = threading.Event()
    blocker = loop.run_in_executor(None, busy.wait, 10)  # some other long job holds one of the two threads
    screen = Screen()

    def ask(on_written):
        for n in range(1, 4):
            on_written(written(n))
            time.sleep(0.05)
        time.sleep(2.0)
        return written(3)

    try:
        # on the default pool's other thread
        await answer_as_written(ask, "scope", screen.send, post_final, interval=1.0)
    finally:
        busy.set()
        await blocker
        pool.shutdown()
    assert [text.count("Sentence") for _, text in screen.shown] == [1, 3, 3]
    assert 1.0 <= screen.shown[1][0] - screen.shown[0][0] < 1.4  # at the interval, not when the answer was done
