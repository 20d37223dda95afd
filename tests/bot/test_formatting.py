"""The limits themselves: whatever the engine returns, what the bot builds fits in Discord."""

from __future__ import annotations

import pytest

from bot.discord import formatting
from bot.discord.catalog import SourceCatalog
from bot.discord.cogs.ask import strip_mentions
from index.answers.compose import Answer, Citation
from tests.bot.conftest import assert_fits


def citation(n: int, *, title: str = "A title", quote: str = "A quoted sentence.") -> Citation:
    return Citation(n=n, doc_id=f"doc-{n}", title=title, source="Outlet", url=f"https://example.org/{n}",
                    published="2025-03-09", quote=quote, passage_id=f"doc-{n}:0", start=0, end=len(quote))


def answer(text: str, citations: list[Citation], question: str = "What happened?") -> Answer:
    return Answer(question, True, text, citations, "en", {"total": 12.0})


@pytest.mark.parametrize("limit", [50, 1024, 4096])
def test_split_text_respects_the_limit_and_loses_nothing(limit):
    text = ("A sentence that goes on. " * 300 + "\n\n" + "word " * 2000 + "x" * 5000).strip()
    chunks = formatting.split_text(text, limit)
    assert all(0 < len(c) <= limit for c in chunks)
    assert "".join(c.replace(" ", "").replace("\n", "") for c in chunks) == text.replace(" ", "").replace("\n", "")


def test_split_text_prefers_sentence_ends():
    chunks = formatting.split_text("First sentence here. Second sentence follows here.", 30)
    assert chunks == ["First sentence here.", "Second sentence follows here."]


def test_many_long_citations_are_spread_over_fields_embeds_and_messages():
    citations = [citation(n, title="T" * 400, quote="q " * 600) for n in range(1, 61)]
    messages = formatting.answer_messages(answer("Answer [1]. " * 1500, citations, question="Q" * 400), scope="x")
    assert len(messages) > 1
    for embeds in messages:
        assert_fits("", embeds)
    lines = [line for embeds in messages for e in embeds for f in e.fields for line in f.value.splitlines()]
    assert [line.split(".", 1)[0] for line in lines] == [str(n) for n in range(1, 61)]  # every source, in order
    quotes = formatting.quotes_messages(answer("a [1]", citations))
    for embeds in quotes:
        assert_fits("", embeds)


def test_the_question_is_recovered_from_an_answer_even_when_cut():
    question = "Why " * 100 + "?"
    first = formatting.answer_messages(answer("Because [1].", [citation(1)], question=question), scope="x")[0]

    class Message:  # the two attributes the function reads, as a discord.Message has them
        author = type("Author", (), {"id": 42})()
        embeds = first

    recovered = formatting.question_from_answer(Message, 42)
    assert recovered and question.startswith(recovered) and len(recovered) < 256
    assert formatting.question_from_answer(Message, 7) is None  # someone else's message


def test_titles_from_articles_cannot_break_links_or_markdown():
    line = formatting.citation_line(citation(1, title="Evil](https://bad.example) **bold**"))
    assert line.startswith("1. [Evil\\](https://bad.example) \\*\\*bold\\*\\*](https://example.org/1)")


def test_fit_embed_truncates_everything_to_its_limit():
    import discord

    embed = discord.Embed(title="t" * 300, description="d" * 5000)
    for _ in range(30):
        embed.add_field(name="n" * 300, value="v" * 2000)
    embed.set_footer(text="f" * 3000)
    assert_fits("", [formatting.fit_embed(embed)])


def test_choices_are_capped_and_short(library):
    catalog = SourceCatalog()
    catalog.refresh(library.current)
    choices = catalog.choices("")
    assert len(choices) == formatting.CHOICES
    assert all(len(c.name) <= formatting.CHOICE_NAME and len(c.value) <= formatting.CHOICE_VALUE for c in choices)
    assert catalog.resolve("RESERVOIR INSPECTION").doc_id == "reservoir"


def test_mentions_are_taken_out_of_questions():
    assert strip_mentions("<@123> @everyone <@&456> <#789> @here how many?") == "how many?"
    assert strip_mentions("email me@everyone.org") == "email me@everyone.org"


@pytest.mark.parametrize(
    "url",
    ["https://", "http:///no-host", "http://[::1", "javascript:alert(1)", "https://exa mple.org/a",
     "https://example.org/a)b", "https://example.org/" + "a" * 2100],
    ids=["no-host", "empty-host", "broken-ipv6", "javascript", "space", "paren", "too-long"],
)
def test_an_address_that_is_not_a_usable_link_is_shown_as_text(url):
    """Discord refuses a whole message whose embed link is malformed (error 50035): never send one."""
    from types import SimpleNamespace

    doc = SimpleNamespace(doc_id="d", title="T", url=url, source="S", published=None, opening="Text.",
                          passage_count=1, author=None)
    card = formatting.source_card(doc)
    assert card.url is None
    assert {f.name: f.value for f in card.fields}["Link"] == formatting.truncate(formatting.escape(url), 1024)
    line = formatting.citation_line(Citation(1, "d", "T", "S", url, None, "q", "d#0", 0, 1))
    assert line == "1. T — S, undated"  # a source without a date says so
    assert "](" not in formatting.sources_pages([doc])[0].description


def test_a_usable_address_is_linked():
    line = formatting.citation_line(citation(3))
    assert line == "3. [A title](https://example.org/3) — Outlet, 2025-03-09"


def test_an_option_value_echoed_in_an_error_is_shown_as_text():
    import discord
    from discord import app_commands

    from bot.discord.errors import user_message

    kind = discord.AppCommandOptionType.string
    error = app_commands.TransformerError("**x** <@1>", kind, app_commands.transformers.IdentityTransformer(kind))
    assert user_message(error) == r"I couldn't use the value '\*\*x\*\* \<\@1>': check the option and try again."


def test_sources_pages_list_every_article_however_long_their_titles_and_addresses():
    from types import SimpleNamespace

    docs = [SimpleNamespace(doc_id=f"doc-{n:02d}", title="*_" * 200, url=f"https://example.org/{n}/" + "a" * 1500,
                            source="|" * 300, published="2025-03-09") for n in range(25)]
    pages = formatting.sources_pages(docs)
    for page in pages:
        assert_fits("", [page])
    listed = [line.split("`")[1] for page in pages for line in page.description.splitlines()]
    assert listed == [d.doc_id for d in docs]  # none cut off the end of a full page
    assert all(f"](https://example.org/{n}/" in "".join(p.description for p in pages) for n in range(25))


def test_search_pages_keep_every_hit_and_cut_escaped_text_between_escapes():
    from types import SimpleNamespace

    hits = [SimpleNamespace(doc_id=f"d{n}", title="*" * 300, url="https://example.org/" + "a" * 1500, source="S",
                            published=None, text="_" * 2000, similarity=0.5, score=0.1) for n in range(8)]
    hits[0].url = "https://example.org/" + "a" * 700  # fits beside a shorter excerpt: kept whole
    pages = formatting.search_pages("q", hits)
    assert [len(p.fields) for p in pages] == [4, 4]
    first = pages[0].fields[0].value
    assert f"· [article]({hits[0].url})\n> \\_" in first and len(first) <= 1024
    for page in pages:
        assert_fits("", [page])
        for field in page.fields:
            for text in (field.name, field.value):
                body = text.removesuffix(formatting.ELLIPSIS)
                assert (len(body) - len(body.rstrip("\\"))) % 2 == 0  # no escape cut in two
    # Past that, the passage is shown and the address, too long to fit beside it, is left out rather than cut.
    for field in [f for page in pages for f in page.fields][1:]:
        assert field.value.startswith("similarity 0.50 · S\n> " + "\\_" * 100)
