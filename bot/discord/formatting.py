"""Engine results → Discord embeds, always within Discord's limits.

discord.py checks almost none of these limits locally: an oversized message is only refused by the
API (error 50035) after the user has waited. So every function here returns payloads that fit, by
splitting long text at paragraph, sentence or word boundaries and truncating what cannot be split.
Nothing here talks to Discord or the engine; it only shapes data, so it is easy to test.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import discord

from index.answers.compose import WRITTEN_NOTE

# Discord's documented limits (https://discord.com/developers/docs/resources/message).
CONTENT = 2000
TITLE = 256
DESCRIPTION = 4096
FIELDS = 25
FIELD_NAME = 256
FIELD_VALUE = 1024
FOOTER = 2048
AUTHOR_NAME = 256
EMBED_TOTAL = 6000  # all embeds of one message together
EMBEDS_PER_MESSAGE = 10
CHOICES = 25
CHOICE_NAME = 100
CHOICE_VALUE = 100
LINK = 2048  # an embed's url; Discord refuses the whole message past it

COLOUR = discord.Colour.from_rgb(64, 120, 192)
DECLINED_COLOUR = discord.Colour.from_rgb(150, 150, 150)

# The footer of every answer starts with this, and its first embed's title is the question: that is how
# a reply to an answer is recognised as a follow-up, without keeping state that a restart would lose.
ANSWER_FOOTER_PREFIX = "Searched "
CONTINUED = " (continued)"
ELLIPSIS = "…"

SOURCES_PER_PAGE = 10
HITS_PER_PAGE = 4
HIT_EXCERPT = 700  # keeps four hits, their titles and a footer well inside 6000 characters
MIN_EXCERPT = 200  # what a search hit always shows of its passage


def truncate(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, marked with an ellipsis when cut.

    Never cuts an escape in two: a lone backslash left at the end would escape the ellipsis.
    """
    text = text or ""
    if len(text) <= limit:
        return text
    return _whole_escapes(text[: max(limit - 1, 0)]).rstrip() + ELLIPSIS


def one_line(text: str) -> str:
    """Collapse whitespace, so titles and list items never break the layout."""
    return " ".join((text or "").split())


# Discord acts on these anywhere in a line: emphasis, underline, strike, spoilers and code (* _ ~ | `),
# masked links ([text](url)), mentions, channels, timestamps and emoji (<@id> <#id> <t:…> <:e:id>),
# @everyone and @here. The backslash itself comes first, so that escaping can be undone exactly.
_INLINE_MARKUP = r"[\\*_~|`\[\]<@]"
# ...and these only where a line starts: headings and subtext (# -#), block quotes (>), lists (- + 1.).
# They are escaped wherever a word starts, because splitting a long text can make any word start an embed.
_LINE_MARKUP = r"(?:(?<=\s)|^)(?:[#>+-]|\d+\.(?=\s))"
# A bare link is left alone, as Discord reads it (the pattern is Discord's): it shows as the link it is.
_BARE_LINK = r"https?://[^\s<]+[^<.,:;\"')\]\s]"
_MARKUP = re.compile(f"(?P<link>{_BARE_LINK})|(?P<markup>{_INLINE_MARKUP}|{_LINE_MARKUP})")
_ESCAPED = re.compile(r"\\([^A-Za-z0-9\s])")


def escape(text: str) -> str:
    """Text from articles or users, shown as written: no Markdown, masked links, mentions or headings.

    A backslash before a punctuation character is invisible in Discord, so nothing changes for the
    reader; `unescape` gives the exact text back.
    """
    return _MARKUP.sub(_escape_match, text or "")


def _escape_match(match: re.Match[str]) -> str:
    found = match.group(0)
    if match.group("link"):
        return found
    if found[-1] == ".":  # a numbered list item ("1. "): the dot makes it one
        return found[:-1] + "\\."
    return "\\" + found


def unescape(text: str) -> str:
    """The text that `escape` was given."""
    return _ESCAPED.sub(r"\1", text or "")


def code(text: str) -> str:
    """`text` as inline code, or escaped when it holds a backtick (a code span cannot hold one)."""
    return f"`{text}`" if text and "`" not in text else escape(text)


def _whole_escapes(text: str) -> str:
    """`text` without a trailing backslash that has lost the character it escaped."""
    trailing = len(text) - len(text.rstrip("\\"))
    return text[:-1] if trailing % 2 else text


_SENTENCE_END = re.compile(r"[.!?…。؟]\s")


def split_text(text: str, limit: int) -> list[str]:
    """Split `text` into chunks of at most `limit` characters.

    Cuts at the last paragraph break, else line break, else sentence end, else space in the window;
    only a single unbroken word longer than `limit` is cut mid-word.
    """
    rest = (text or "").strip()
    chunks: list[str] = []
    while len(rest) > limit:
        window = rest[:limit]
        cut = _best_cut(window)
        chunks.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        chunks.append(rest)
    return chunks


def _best_cut(window: str) -> int:
    floor = len(window) // 3  # a cut earlier than this would leave uselessly small chunks
    for separator in ("\n\n", "\n"):
        at = window.rfind(separator)
        if at > floor:
            return at + len(separator)
    ends = [m.end() for m in _SENTENCE_END.finditer(window)]
    if ends and ends[-1] > floor:
        return ends[-1]
    at = window.rfind(" ")
    if at > floor:
        return at + 1
    return len(_whole_escapes(window))  # one unbroken word: cut it, but not inside an escape


@dataclass(frozen=True)
class Field:
    name: str
    value: str


def pack(
    title: str,
    body: str,
    fields: Sequence[Field] = (),
    footer: str = "",
    *,
    colour: discord.Colour = COLOUR,
    url: str | None = None,
) -> list[list[discord.Embed]]:
    """Lay out a titled text and its fields over as many embeds and messages as they need.

    Returns one list of embeds per message. Every embed and every message respects Discord's limits;
    each message starts with the title (marked as continued after the first) and ends with the footer
    (numbered when there is more than one message).
    """
    title = truncate(one_line(title), TITLE)
    continued_title = truncate(one_line(title.removesuffix(ELLIPSIS)), TITLE - len(CONTINUED)) + CONTINUED
    footer = truncate(footer, 300)  # Discord allows 2048; a short footer leaves room for the content
    part_room = len(" · part 99/99")
    room = EMBED_TOTAL - max(len(title), len(continued_title)) - len(footer) - part_room
    chunk = min(DESCRIPTION, room)

    messages: list[list[discord.Embed]] = [[]]
    used = 0

    def new_embed() -> discord.Embed:
        nonlocal used
        if len(messages[-1]) == EMBEDS_PER_MESSAGE:
            messages.append([])
            used = 0
        embed = discord.Embed(colour=colour)
        messages[-1].append(embed)
        return embed

    for piece in split_text(body, chunk) or ["—"]:
        if used + len(piece) > room:
            messages.append([])
            used = 0
        new_embed().description = piece
        used += len(piece)

    for field in fields:
        name = truncate(one_line(field.name), FIELD_NAME) or "—"
        value = truncate(field.value, FIELD_VALUE) or "—"
        size = len(name) + len(value)
        if used + size > room:
            messages.append([])
            used = 0
        embed = messages[-1][-1] if messages[-1] else None
        if embed is None or len(embed.fields) == FIELDS:
            embed = new_embed()
        embed.add_field(name=name, value=value, inline=False)
        used += size

    messages = [message for message in messages if message]
    for number, embeds in enumerate(messages, start=1):
        embeds[0].title = title if number == 1 else continued_title
        if url and number == 1:
            embeds[0].url = url
        if footer or len(messages) > 1:
            part = f" · part {number}/{len(messages)}" if len(messages) > 1 else ""
            embeds[-1].set_footer(text=(footer + part).lstrip(" ·"))
    return messages


def fit_embed(embed: discord.Embed) -> discord.Embed:
    """A last line of defence for single embeds (pages, cards): truncate every part to its limit."""
    if embed.title:
        embed.title = truncate(embed.title, TITLE)
    if embed.description:
        embed.description = truncate(embed.description, DESCRIPTION)
    fields = embed.fields[:FIELDS]
    embed.clear_fields()
    for field in fields:
        embed.add_field(
            name=truncate(field.name or "—", FIELD_NAME),
            value=truncate(field.value or "—", FIELD_VALUE),
            inline=bool(field.inline),
        )
    if embed.footer.text:
        embed.set_footer(text=truncate(embed.footer.text, FOOTER))
    while len(embed) > EMBED_TOTAL and embed.fields:
        embed.remove_field(-1)
    if len(embed) > EMBED_TOTAL and embed.description:
        embed.description = truncate(embed.description, len(embed.description) - (len(embed) - EMBED_TOTAL))
    return embed


def message_text(text: str) -> str:
    """Plain message content, cut to Discord's 2000 characters."""
    return truncate(text, CONTENT)


# ---------------------------------------------------------------- answers


def _date(published: str | None) -> str:
    return (published or "")[:10]


def outlet_line(item: Any) -> str:
    """`outlet, date` of an article, a citation or a hit, as plain text."""
    return ", ".join(part for part in (one_line(item.source or ""), _date(item.published)) if part)


def citation_line(citation: Any, also_reported: Sequence[Any] = ()) -> str:
    """`n. title — outlet, date`, the title linked to the article; then other outlets' copies of the
    same story, stored once (feeds): `· also reported by outlet, date`."""
    title = truncate(escape(one_line(citation.title) or citation.doc_id), 200)
    linked = f"[{title}]({citation.url})" if _is_link(citation.url) else title
    # A citation always says when its source was published, or that it does not say.
    dated = _date(citation.published) or "undated"
    outlet = ", ".join(part for part in (one_line(citation.source or ""), dated) if part)
    line = f"{citation.n}. {linked} — {truncate(escape(outlet), 120)}"
    if also_reported:
        others = "; ".join(escape(outlet_line(report) or one_line(report.url)) for report in also_reported)
        line += f" · also reported by {truncate(others, 300)}"
    return line


def _is_link(url: str | None) -> bool:
    """Whether Discord accepts `url` as an embed's link and Markdown keeps it whole inside `[text](url)`."""
    if not url or len(url) > LINK or ")" in url or any(c.isspace() for c in url):
        return False
    try:
        parts = urlsplit(url)
        return parts.scheme in {"http", "https"} and bool(parts.hostname)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return False


def link_or_text(url: str) -> str:
    """An article's address as a field value: a link when it is one, else shown as text."""
    return url if _is_link(url) else escape(url)


def _lines_to_fields(name: str, lines: Iterable[str]) -> list[Field]:
    """Group lines into as few fields as fit, never splitting a line (a line longer than a field is cut)."""
    fields: list[Field] = []
    current: list[str] = []
    for line in lines:
        line = truncate(line, FIELD_VALUE)
        if current and len("\n".join([*current, line])) > FIELD_VALUE:
            fields.append(Field(name if not fields else name + CONTINUED, "\n".join(current)))
            current = []
        current.append(line)
    if current:
        fields.append(Field(name if not fields else name + CONTINUED, "\n".join(current)))
    return fields


def answer_footer(answer: Any, scope: str) -> str:
    total = (answer.timings_ms or {}).get("total")
    took = f" · {total:.0f} ms" if isinstance(total, (int, float)) else ""
    worded = f" · {WRITTEN_NOTE}" if getattr(answer, "worded_by_model", False) else ""  # ANSWER_MODE=llm
    return f"{ANSWER_FOOTER_PREFIX}{scope}{took}{worded}"


_MARKER = re.compile(r"\\\[(\d+)\\\](?!\()")


def answer_body(answer: Any) -> str:
    """The answer's text with the quoted words escaped; its [n] markers are the bot's own and stay live."""
    numbers = {str(c.n) for c in answer.citations}
    return _MARKER.sub(lambda m: f"[{m[1]}]" if m[1] in numbers else m[0], escape(answer.text or ""))


def answer_messages(answer: Any, *, scope: str,
                    also_reported: Mapping[str, Sequence[Any]] | None = None) -> list[list[discord.Embed]]:
    """An answer as embeds: the text with its [n] markers, the sources linked (with other outlets that
    reported the same story), a footer saying what was searched."""
    body = answer_body(answer)
    if answer.note:
        body += f"\n\n*{escape(one_line(answer.note))}*"
    heading = "Sources" if answer.answered else "Closest sources"
    fields = _lines_to_fields(heading, (citation_line(c, (also_reported or {}).get(c.doc_id, ()))
                                        for c in answer.citations))
    return pack(
        escape(one_line(answer.question)),
        body,
        fields,
        answer_footer(answer, scope),
        colour=COLOUR if answer.answered else DECLINED_COLOUR,
    )


def question_from_answer(message: discord.Message, bot_id: int) -> str | None:
    """The question a message of ours answered, or None if it is not one of our answers."""
    if message.author.id != bot_id or not message.embeds:
        return None
    first, last = message.embeds[0], message.embeds[-1]
    if not (last.footer.text or "").startswith(ANSWER_FOOTER_PREFIX) or not first.title:
        return None
    return unescape(first.title.removesuffix(CONTINUED).removesuffix(ELLIPSIS).strip()) or None


def quotes_messages(answer: Any) -> list[list[discord.Embed]]:
    """The exact sentences an answer quoted, each with where it comes from."""
    blocks = []
    for citation in answer.citations:
        quote = escape(one_line(citation.quote))
        blocks.append(f"**[{citation.n}]** “{quote}”\n— {citation_line(citation).split(' ', 1)[1]}")
    return pack(f"Quoted passages: {escape(one_line(answer.question))}", "\n\n".join(blocks) or "No quotes.")


# ---------------------------------------------------------------- sources and search


def source_label(doc: Any) -> str:
    """`title — outlet, date` as plain text (autocomplete lists show no Markdown)."""
    outlet = outlet_line(doc)
    return f"{one_line(doc.title) or doc.doc_id}" + (f" — {outlet}" if outlet else "")


def sources_pages(documents: Sequence[Any], heading: str = "Indexed sources") -> list[discord.Embed]:
    """The indexed articles, up to ten to a page (fewer when their lines are long): id, title, outlet, date."""
    total = len(documents)
    if not documents:
        return [discord.Embed(title=heading, description="The index is empty.", colour=COLOUR)]
    pages: list[list[str]] = [[]]
    for doc in documents:
        # At most ~2,400 characters (the link is at most 2048), so a line always fits a page.
        title = truncate(escape(one_line(doc.title) or doc.doc_id), 150)
        if _is_link(doc.url):
            title = f"[{title}]({doc.url})"
        outlet = truncate(escape(outlet_line(doc)), 120)
        line = f"{code(truncate(doc.doc_id, 60))} {title}" + (f" — {outlet}" if outlet else "")
        page = pages[-1]
        if len(page) == SOURCES_PER_PAGE or len("\n".join([*page, line])) > DESCRIPTION:
            pages.append(page := [])
        page.append(line)
    embeds = [discord.Embed(title=f"{heading} ({total})", description="\n".join(lines), colour=COLOUR)
              for lines in pages]
    return _number_pages(embeds, "Use /source with an id for details")


def source_card(doc: Any) -> discord.Embed:
    """One article: title, outlet, date, link, passages and its opening lines."""
    embed = discord.Embed(
        title=escape(one_line(doc.title) or doc.doc_id),
        url=doc.url if _is_link(doc.url) else None,
        description=truncate(escape(doc.opening or ""), 1500),
        colour=COLOUR,
    )
    embed.add_field(name="Outlet", value=escape(doc.source or "unknown"))
    embed.add_field(name="Published", value=_date(doc.published) or "unknown")
    embed.add_field(name="Passages", value=str(doc.passage_count))
    if getattr(doc, "author", None):
        embed.add_field(name="Author", value=escape(doc.author))
    embed.add_field(name="Id", value=code(doc.doc_id), inline=False)
    if doc.url:
        embed.add_field(name="Link", value=link_or_text(doc.url), inline=False)
    return fit_embed(embed)


def hit_score(hit: Any) -> str:
    # The fused ranking score only orders results; the cosine similarity, when present, means something.
    similarity = getattr(hit, "similarity", None)
    if similarity is not None:
        return f"similarity {similarity:.2f}"
    return f"score {hit.score:.3f}"


def search_pages(query: str, hits: Sequence[Any]) -> list[discord.Embed]:
    """The best passages for a query, four to a page, with their scores and links."""
    title = f"Search: {escape(one_line(query))}"
    if not hits:
        return [fit_embed(discord.Embed(title=title, description="No passage matches.", colour=COLOUR))]
    pages = []
    for start in range(0, len(hits), HITS_PER_PAGE):
        embed = discord.Embed(title=title, colour=COLOUR)
        for rank, hit in enumerate(hits[start : start + HITS_PER_PAGE], start=start + 1):
            outlet = outlet_line(hit)
            head = hit_score(hit) + (f" · {truncate(escape(outlet), 120)}" if outlet else "")
            link = f" · [article]({hit.url})" if _is_link(hit.url) else ""
            if len(head) + len(link) > FIELD_VALUE - MIN_EXCERPT:
                link = ""  # a very long address would crowd out the passage, or be cut mid-link
            room = FIELD_VALUE - len(head) - len(link) - len("\n> ")
            excerpt = truncate(escape(one_line(hit.text)), min(HIT_EXCERPT, room))
            embed.add_field(
                name=f"{rank}. {truncate(escape(one_line(hit.title) or hit.doc_id), 200)}",
                value=f"{head}{link}\n> {excerpt}",
                inline=False,
            )
        pages.append(embed)
    return _number_pages(pages, f"{len(hits)} passages")


def _number_pages(pages: list[discord.Embed], footer: str) -> list[discord.Embed]:
    for number, page in enumerate(pages, start=1):
        page.set_footer(text=f"{footer} · page {number}/{len(pages)}")
        fit_embed(page)
    return pages


# ---------------------------------------------------------------- admin and about


def progress_text(progress: Any) -> str:
    counts = f" {progress.done}/{progress.total}" if progress.total else ""
    return message_text(f"Re-indexing… {progress.stage}{counts}")


def _ids(ids: Sequence[str]) -> str:
    return truncate(", ".join(code(i) for i in ids), FIELD_VALUE) if ids else "none"


def reindex_embed(report: Any) -> discord.Embed:
    embed = discord.Embed(title="Re-index finished", colour=COLOUR)
    embed.description = (
        f"{report.documents} documents, {report.passages} passages in {report.seconds:.1f} s "
        f"({report.passages_per_second:.0f} passages/s). The new index is answering now."
    )
    embed.add_field(name=f"Added ({len(report.added)})", value=_ids(report.added), inline=False)
    embed.add_field(name=f"Changed ({len(report.changed)})", value=_ids(report.changed), inline=False)
    embed.add_field(name=f"Removed ({len(report.removed)})", value=_ids(report.removed), inline=False)
    if report.warnings:
        embed.add_field(name="Warnings", value=escape("\n".join(report.warnings)), inline=False)
    return fit_embed(embed)


def ingest_embed(report: Any) -> discord.Embed:
    article = report.article
    if report.status != "added":
        embed = discord.Embed(title="Already in the corpus", colour=DECLINED_COLOUR)
        embed.description = f"Not added: {escape(report.reason or 'it is a duplicate')}."
    else:
        embed = discord.Embed(title="Article added", colour=COLOUR)
        build = report.build
        embed.description = "The new index is answering now." + (
            f" {build.documents} documents, {build.passages} passages ({build.seconds:.1f} s)." if build else ""
        )
    if article is not None:
        embed.add_field(name="Article", value=escape(source_label(article)), inline=False)
        embed.add_field(name="Id", value=code(article.doc_id), inline=False)
        if article.url:
            embed.add_field(name="Link", value=link_or_text(article.url), inline=False)
    return fit_embed(embed)


def about_embed(info: Any) -> discord.Embed:
    embed = discord.Embed(
        title="About Verbatim",
        description="Answers questions about news events by quoting its sources, word for word.",
        colour=COLOUR,
    )
    embed.add_field(name="Documents", value=str(info.documents))
    embed.add_field(name="Passages", value=str(info.passages))
    embed.add_field(name="Model", value=f"{code(str(info.model))} ({info.dimension} dimensions)", inline=False)
    embed.add_field(name="Index built", value=str(info.built_at))
    embed.add_field(name="Version", value=str(info.version))
    return fit_embed(embed)
