"""Splitting articles into passages: whole sentences, packed up to the embedder's token window."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sentencex import segment

from index.retrieval.language import detect_language
from index.sources.corpus import Article

TokenCounter = Callable[[Sequence[str]], list[int]]

_PARAGRAPH = re.compile(r"\S(?:.*?\S)?(?=\n\s*\n|\Z)", re.DOTALL)


@dataclass(frozen=True)
class Span:
    start: int
    end: int


@dataclass(frozen=True)
class Passage:
    passage_id: str
    doc_id: str
    position: int
    start: int  # character offsets of `text` in the article's text
    end: int
    text: str
    sentences: tuple[Span, ...]  # article offsets of each whole sentence in the passage
    first_sentence: int = 0  # index of `sentences[0]` among the article's sentences


@dataclass(frozen=True)
class SplitArticle:
    """An article cut two ways from one sentence split: its sentences, and passages packed from them.

    Sentences are what gets embedded; a passage's vector is derived from its sentences' vectors, so
    no token is embedded twice (see index/store/build.py).
    """

    sentences: tuple[Span, ...]
    sentence_tokens: tuple[int, ...]  # the embedder's token count of each sentence
    passages: tuple[Passage, ...]


def sentence_spans(text: str, language: str | None = None) -> list[Span]:
    """Every sentence of `text` as article offsets, trimmed of surrounding white space.

    Paragraphs (blank-line separated) are split separately so a sentence never runs across one.
    """
    language = language or detect_language(text)
    spans: list[Span] = []
    for paragraph in _PARAGRAPH.finditer(text):
        cursor = paragraph.start()
        for sentence in segment(language, paragraph.group()):
            # sentencex returns consecutive pieces of the paragraph; find each to get its offsets.
            found = text.find(sentence, cursor, paragraph.end())
            if found < 0:  # defensive: never lose text, fall back to the rest of the paragraph
                found, sentence = cursor, text[cursor : paragraph.end()]
            start, end = found, found + len(sentence)
            cursor = end
            stripped = text[start:end]
            lead = len(stripped) - len(stripped.lstrip())
            trail = len(stripped) - len(stripped.rstrip())
            if end - trail > start + lead:
                spans.append(Span(start + lead, end - trail))
    return spans


def split_article(
    article: Article,
    count_tokens: TokenCounter,
    max_tokens: int,
    overlap_sentences: int = 1,
) -> list[Passage]:
    return list(split_article_sentences(article, count_tokens, max_tokens, overlap_sentences).passages)


def split_article_sentences(
    article: Article,
    count_tokens: TokenCounter,
    max_tokens: int,
    overlap_sentences: int = 1,
) -> SplitArticle:
    """Split into sentences, then greedily pack consecutive sentences into passages of at most
    `max_tokens` tokens.

    A sentence longer than the window becomes a passage of its own rather than being cut.
    Consecutive passages share `overlap_sentences` sentences so that context is not lost at a seam.
    """
    spans = sentence_spans(article.text, article.lang)
    if not spans:
        return SplitArticle((), (), ())
    tokens = count_tokens([article.text[s.start : s.end] for s in spans])
    groups: list[tuple[int, int]] = []  # [first, last) sentence indexes of each passage
    first = 0
    while first < len(spans):
        last, used = first, 0
        while last < len(spans) and (last == first or used + tokens[last] <= max_tokens):
            used += tokens[last]
            last += 1
        groups.append((first, last))
        if last >= len(spans):
            break
        # Step back for overlap, but always move forward by at least one sentence.
        first = max(last - overlap_sentences, first + 1)
    passages = []
    for position, (first, last) in enumerate(groups):
        start, end = spans[first].start, spans[last - 1].end
        passages.append(
            Passage(
                passage_id=f"{article.doc_id}#{position}",
                doc_id=article.doc_id,
                position=position,
                start=start,
                end=end,
                text=article.text[start:end],
                sentences=tuple(spans[first:last]),
                first_sentence=first,
            )
        )
    return SplitArticle(tuple(spans), tuple(int(t) for t in tokens), tuple(passages))
