"""The bot against a simulated Discord (simcord) and the real engine over the seed article.

The index is built once per session; every test gets a fresh bot and a fresh simulated Discord.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path

import discord
import pytest
import pytest_asyncio
from simcord import Env

from bot.discord.client import create_bot
from index.engine import Engine, LiveEngine
from index.settings import Settings
from index.store.build import build_index

SEED_ARTICLE = Path(__file__).resolve().parents[2] / "corpus" / "syria-vows-accountability.md"
SEED_URL = "https://www.timesofisrael.com/syria-vows-accountability-after-over-1000-reportedly-slain-in-mass-killings/"

# The real model answers in well under a second, but a cold CPU in CI can be slow: wait generously.
SETTLE_TIMEOUT = 60.0


def bot_settings(root: Path, **overrides) -> Settings:
    corpus = root / "corpus"
    if not corpus.exists():
        corpus.mkdir(parents=True)
        shutil.copy(SEED_ARTICLE, corpus)
    values = {"ask_burst": 0, **overrides}  # no question budget, unless a test is about it
    return Settings(_env_file=None, corpus_dir=corpus, data_dir=root / "var", **values)


@pytest.fixture(scope="session")
def bot_index(tmp_path_factory, encoders) -> Settings:  # `encoders`: the session's models, tests/conftest.py
    """Settings over an index of the seed article, built once for all bot tests."""
    settings = bot_settings(tmp_path_factory.mktemp("bot-index"))
    build_index(settings, encoders=encoders)
    return settings


@pytest.fixture(scope="session")
def live(bot_index, encoders) -> LiveEngine:
    return LiveEngine(bot_index, Engine.load(bot_index, encoders=encoders))


@pytest.fixture
def settings(bot_index, request) -> Settings:
    """The session's settings; a test changes some with
    `@pytest.mark.parametrize("settings", [{...}], indirect=True)`."""
    return bot_index.model_copy(update=getattr(request, "param", {}))


@pytest.fixture
def simcord_bot(settings, live) -> discord.Client:
    return create_bot(settings, live)


@pytest_asyncio.fixture
async def env(simcord_bot) -> Env:
    """A running simulated Discord around the bot; errors the bot swallowed fail the test at teardown."""
    env = Env(simcord_bot, settle_timeout=SETTLE_TIMEOUT)
    await env.start()
    try:
        yield env
    finally:
        await env.shutdown()
        env._raise_errors_since(env._errors_acknowledged)


@pytest.fixture
def guild(env):
    return env.create_guild("Newsroom")


@pytest.fixture
def channel(guild):
    return guild.create_text_channel("news")


@pytest.fixture
def alice(env, guild):
    return guild.add_member(env.create_user("alice"))


@pytest.fixture
def bob(env, guild):
    return guild.add_member(env.create_user("bob"))


def embed_text(embeds: list[discord.Embed]) -> str:
    """Everything a reader sees in some embeds, as one string."""
    parts = []
    for embed in embeds:
        parts += [embed.title or "", embed.description or "", embed.footer.text or ""]
        parts += [f"{f.name}\n{f.value}" for f in embed.fields]
    return "\n".join(parts)


def assert_fits(content: str, embeds: list[discord.Embed]) -> None:
    """Discord's limits for one message (simcord checks them too; this says which one broke)."""
    assert len(content or "") <= 2000
    assert len(embeds) <= 10
    assert sum(len(e) for e in embeds) <= 6000
    for embed in embeds:
        assert len(embed.title or "") <= 256
        assert len(embed.description or "") <= 4096
        assert len(embed.fields) <= 25
        assert all(len(f.name) <= 256 and len(f.value) <= 1024 for f in embed.fields)
        assert len(embed.footer.text or "") <= 2048


async def wait_until(condition: Callable[[], object], timeout: float = SETTLE_TIMEOUT) -> None:
    """Let the bot run (without settling the simulated world) until `condition` holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("timed out waiting for the bot")
        await asyncio.sleep(0.01)


# ------------------------------------------------------------------ a bigger corpus

TOWNS = ["Jableh", "Latakia", "Tartus", "Baniyas", "Homs", "Hama", "Aleppo", "Idlib", "Daraa", "Raqqa"]
TOPICS = ["water supply", "electricity", "bread prices", "school reopening", "road repairs", "hospital staffing"]
LIBRARY_SIZE = 30

# One sentence of about 9,000 characters: the engine quotes whole sentences, so its answer and its
# quote are longer than one embed and one message allow, and the bot must split them.
LONG_SENTENCE = "The Qardaha reservoir committee reported " + ", and ".join(
    f"that engineer number {n} inspected the pumping station, the filtration plant and the canal network of the valley"
    for n in range(1, 81)
) + "."


def write_article(folder: Path, name: str, title: str, body: str, *, url: str, source: str = "Example Wire",
                  published: str = "2025-03-10") -> None:
    front = f'---\ntitle: "{title}"\nurl: "{url}"\nsource: "{source}"\npublished: "{published}"\nlang: en\n---\n\n'
    (folder / f"{name}.md").write_text(front + body + "\n", encoding="utf-8")


@pytest.fixture(scope="session")
def library_index(tmp_path_factory, encoders) -> Settings:
    """The seed article, 30 short reports and one with a very long sentence, built once."""
    settings = bot_settings(tmp_path_factory.mktemp("library-index"))
    for n in range(1, LIBRARY_SIZE + 1):
        town, topic = TOWNS[n % len(TOWNS)], TOPICS[n % len(TOPICS)]
        write_article(
            settings.corpus_dir, f"report-{n:02d}", f"Report {n:02d}: {topic} in {town}",
            f"Officials in {town} said on day {n} that the {topic} situation was under review. "
            f"Residents of {town} described queues and delays. A council member promised an update within {n} days.",
            url=f"https://example.org/reports/{n:02d}",
        )
    write_article(settings.corpus_dir, "reservoir", "Reservoir inspection", LONG_SENTENCE,
                  url="https://example.org/reservoir")
    build_index(settings, encoders=encoders)
    return settings


@pytest.fixture(scope="session")
def library(library_index, encoders) -> LiveEngine:
    return LiveEngine(library_index, Engine.load(library_index, encoders=encoders))
