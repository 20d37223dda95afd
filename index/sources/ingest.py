"""Adding an article by its address: fetch, extract, save into the corpus, index incrementally.

The corpus folder stays the source of truth: the article becomes a reviewable Markdown file there.
Adding is all or nothing: the build lock is taken before anything is saved, and the saved file is
taken back if the build fails, so the corpus never holds an article the index does not.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from index.settings import Settings
from index.sources.corpus import Article, doc_id_from_url, extract_html, load_corpus, save_article
from index.sources.feeds import canonical_url
from index.sources.fetch import FetchPolicy, fetch_page, normalise_url
from index.sources.stories import KnownStories
from index.store.build import BuildReport, Encoders, ProgressCallback, add_articles_locked
from index.store.stores import write_lock


@dataclass(frozen=True)
class IngestReport:
    status: Literal["added", "duplicate"]
    article: Article  # the new article, or the one already in the corpus
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


def add_url(
    settings: Settings,
    url: str,
    *,
    encoders: Encoders | None = None,
    progress: ProgressCallback | None = None,
) -> IngestReport:
    """Fetch the article at `url` into the corpus and update the index. Duplicates are not added."""
    address = normalise_url(url)
    # Held from the duplicate check to the switch to the new index: a concurrent re-index is refused
    # before anything is fetched or saved, and no other add can save the same article meanwhile.
    with write_lock(settings):
        existing = (load_corpus([settings.corpus_dir], max_article_chars=settings.max_article_chars).articles
                    if settings.corpus_dir.exists() else [])
        known = KnownStories(existing, settings.feed_duplicate_similarity)
        stored = known.at_address(canonical_url(address))
        if stored is not None:
            return IngestReport("duplicate", stored, reason="this address is already in the corpus")

        page = fetch_page(address, fetch_policy(settings))
        if page.url != address and (stored := known.at_address(canonical_url(page.url))) is not None:
            return IngestReport("duplicate", stored, reason="it redirects to an address already in the corpus")
        article = extract_html(page.html, url=address, doc_id=doc_id_from_url(address), origin=address)
        copy = known.copy_of(article, canonical_url(address))
        if copy is not None:
            return IngestReport("duplicate", copy[0], reason=copy[1])

        target = settings.corpus_dir / f"{article.doc_id}.md"
        replaced = target.read_bytes() if target.is_file() else None
        path = save_article(settings.corpus_dir, article)
        try:
            # Only the new article is indexed, as one more segment: the cost does not grow with the index.
            # It is indexed as read back from its file, as an update would read it, so none re-embeds it.
            saved = load_corpus([path], max_article_chars=settings.max_article_chars).articles
            build = add_articles_locked(settings, saved, encoders=encoders, progress=progress)
        except BaseException:
            _take_back(path, replaced)
            raise
    return IngestReport("added", article, path=path, build=build)


def _take_back(path: Path, replaced: bytes | None) -> None:
    """Undo `save_article`: remove the new file, or put back the one it overwrote."""
    if replaced is None:
        path.unlink(missing_ok=True)
    else:
        path.write_bytes(replaced)
