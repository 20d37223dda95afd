"""Adding an article by its address: fetch, extract, save into the corpus, index incrementally.

The corpus folder stays the source of truth: the article becomes a reviewable Markdown file there.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from index.build import BuildReport, Encoders, ProgressCallback, build_index
from index.corpus import Article, doc_id_from_url, extract_html, load_corpus, save_article
from index.fetch import FetchPolicy, fetch_page, normalise_url
from index.settings import Settings


@dataclass(frozen=True)
class IngestReport:
    status: Literal["added", "duplicate"]
    article: Article | None  # the new article, or the one already in the corpus
    path: Path | None = None
    reason: str = ""
    build: BuildReport | None = None


def fetch_policy(settings: Settings) -> FetchPolicy:
    return FetchPolicy(
        timeout_seconds=settings.fetch_timeout_seconds,
        max_bytes=settings.fetch_max_bytes,
        max_redirects=settings.fetch_max_redirects,
        allowed_networks=tuple(settings.fetch_allowed_networks),
    )


def text_key(text: str) -> str:
    """Two copies of an article count as the same text whatever their spacing and case."""
    return hashlib.sha256(" ".join(text.split()).lower().encode("utf-8")).hexdigest()


def add_url(
    settings: Settings,
    url: str,
    *,
    encoders: Encoders | None = None,
    progress: ProgressCallback | None = None,
) -> IngestReport:
    """Fetch the article at `url` into the corpus and update the index. Duplicates are not added."""
    address = normalise_url(url)
    existing = load_corpus([settings.corpus_dir]).articles if settings.corpus_dir.exists() else []
    by_url = {normalise_url(a.url): a for a in existing if a.url and a.url.startswith(("http://", "https://"))}
    if address in by_url:
        return IngestReport("duplicate", by_url[address], reason="this address is already in the corpus")

    page = fetch_page(address, fetch_policy(settings))
    if page.url != address and page.url in by_url:
        return IngestReport("duplicate", by_url[page.url], reason="it redirects to an address already in the corpus")
    article = extract_html(page.html, url=address, doc_id=doc_id_from_url(address), origin=address)
    by_text = {text_key(a.text): a for a in existing}
    if text_key(article.text) in by_text:
        return IngestReport("duplicate", by_text[text_key(article.text)], reason="the same text is already in the corpus")

    path = save_article(settings.corpus_dir, article)
    build = build_index(settings, encoders=encoders, progress=progress, incremental=True)
    return IngestReport("added", article, path=path, build=build)
