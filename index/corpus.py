"""Reading articles from the corpus: Markdown with front matter, and JSON Lines for bulk imports."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import frontmatter
import yaml

from index.errors import CorpusError

MARKDOWN_SUFFIXES = {".md", ".markdown"}
JSONL_SUFFIXES = {".jsonl"}
HTML_SUFFIXES = {".html", ".htm"}
TEXT_SUFFIXES = {".txt"}
CORPUS_SUFFIXES = MARKDOWN_SUFFIXES | JSONL_SUFFIXES | HTML_SUFFIXES | TEXT_SUFFIXES


@dataclass(frozen=True)
class Article:
    doc_id: str
    title: str
    text: str
    source: str | None = None
    url: str | None = None
    published: str | None = None
    author: str | None = None
    lang: str | None = None
    origin: str = ""  # the file (and line) it came from, for messages

    @property
    def content_hash(self) -> str:
        payload = json.dumps(
            [self.title, self.text, self.source, self.url, self.published, self.author, self.lang],
            ensure_ascii=False,
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass
class CorpusLoad:
    articles: list[Article] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def slugify(value: str, max_length: int = 80) -> str:
    """A readable, stable id: lower-case ASCII words joined by dashes (other scripts are kept)."""
    value = unicodedata.normalize("NFKC", value).lower()
    value = re.sub(r"[^\w]+", "-", value, flags=re.UNICODE).strip("-_")
    return value[:max_length].rstrip("-") or hashlib.sha1(value.encode()).hexdigest()[:12]


def doc_id_from_url(url: str) -> str:
    """Stable id for an article known by its address: the last path part, plus a short hash."""
    path = re.sub(r"^[a-z]+://", "", url.strip().lower()).split("?")[0].rstrip("/")
    tail = slugify(path.rsplit("/", 1)[-1], max_length=60)
    digest = hashlib.sha1(url.strip().encode("utf-8")).hexdigest()[:8]
    return f"{tail}-{digest}"


def _iso_date(value: object) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    text = str(value).strip()
    try:
        return dt.date.fromisoformat(text[:10]).isoformat()
    except ValueError:
        return text or None


def _optional_str(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def normalise_text(text: str) -> str:
    """Unify line endings and trim; paragraph breaks (blank lines) are kept as they are."""
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


def read_markdown(path: Path) -> Article:
    try:
        post = frontmatter.loads(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, ValueError, UnicodeDecodeError) as error:
        raise CorpusError(f"{path}: broken front matter ({type(error).__name__}); fix it or remove the file") from error
    meta = post.metadata
    if not isinstance(meta, dict):
        raise CorpusError(f"{path}: the front matter is not a mapping of fields")
    text = normalise_text(post.content)
    title = _optional_str(meta.get("title"))
    if not title:
        raise CorpusError(f"{path}: the front matter has no `title`")
    if not text:
        raise CorpusError(f"{path}: the article has no text after its front matter")
    return Article(
        doc_id=slugify(path.stem),
        title=title,
        text=text,
        source=_optional_str(meta.get("source")),
        url=_optional_str(meta.get("url")),
        published=_iso_date(meta.get("published")),
        author=_optional_str(meta.get("author")),
        lang=_optional_str(meta.get("lang")),
        origin=str(path),
    )


def extract_html(html: str | bytes, *, url: str | None, doc_id: str, origin: str) -> Article:
    """The article in a web page: text, title, date, author and outlet, found by trafilatura."""
    import trafilatura

    found = trafilatura.bare_extraction(
        html, url=url, with_metadata=True, include_comments=False, include_tables=False, favor_precision=True,
    )
    text = (getattr(found, "text", None) or "").strip() if found is not None else ""
    if not text:
        raise CorpusError(f"{origin}: no article text could be found in the page")
    title = _optional_str(getattr(found, "title", None))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if title and lines and lines[0] == title:
        lines = lines[1:]  # the headline repeated as the first line of the body
    body = "\n\n".join(lines)
    if not body:
        raise CorpusError(f"{origin}: the page has a title but no article text")
    return Article(
        doc_id=doc_id,
        title=title or lines[0][:120],
        text=body,
        source=_optional_str(getattr(found, "sitename", None)) or _optional_str(getattr(found, "hostname", None)),
        url=url or _optional_str(getattr(found, "url", None)),
        published=_iso_date(getattr(found, "date", None)),
        author=_optional_str(getattr(found, "author", None)),
        lang=_optional_str(getattr(found, "language", None)),
        origin=origin,
    )


def read_html(path: Path) -> Article:
    return extract_html(path.read_bytes(), url=None, doc_id=slugify(path.stem), origin=str(path))


def read_text_file(path: Path) -> Article:
    """Plain text: the first line is the title, the rest the article."""
    try:
        content = normalise_text(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise CorpusError(f"{path}: not UTF-8 text; convert it or remove it") from error
    title, _, body = content.partition("\n")
    if not title.strip() or not body.strip():
        raise CorpusError(f"{path}: needs a title on the first line and the article below it")
    return Article(doc_id=slugify(path.stem), title=title.strip(), text=body.strip(), origin=str(path))


def article_markdown(article: Article) -> str:
    """The article as a corpus file: YAML front matter, then the text."""
    meta = {
        key: value
        for key, value in {
            "title": article.title, "url": article.url, "source": article.source,
            "published": article.published, "author": article.author, "lang": article.lang,
        }.items()
        if value
    }
    front = yaml.safe_dump(meta, allow_unicode=True, sort_keys=False, width=1000)
    return f"---\n{front}---\n\n{article.text}\n"


def save_article(folder: Path, article: Article) -> Path:
    """Write `article` as `<folder>/<doc_id>.md` atomically: a crash leaves no half-written file."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{article.doc_id}.md"
    staging = folder / f".{article.doc_id}.md.tmp"
    staging.write_text(article_markdown(article), encoding="utf-8")
    os.replace(staging, path)
    return path


def read_jsonl(path: Path) -> Iterator[Article | CorpusError]:
    """One article a line; a bad line is yielded as an error so the rest still load."""
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                yield CorpusError(f"{where}: not valid JSON ({error.msg})")
                continue
            if not isinstance(record, dict):
                yield CorpusError(f"{where}: expected an object per line")
                continue
            text = normalise_text(str(record.get("text") or ""))
            url = _optional_str(record.get("url"))
            raw_id = _optional_str(record.get("id"))
            doc_id = raw_id or (doc_id_from_url(url) if url else None)
            if not doc_id:
                yield CorpusError(f"{where}: needs an `id` or a `url`")
                continue
            if not text:
                yield CorpusError(f"{where}: has no `text`")
                continue
            yield Article(
                doc_id=doc_id,
                title=_optional_str(record.get("title")) or doc_id,
                text=text,
                source=_optional_str(record.get("source")),
                url=url,
                published=_iso_date(record.get("published_at") or record.get("published")),
                author=_optional_str(record.get("author")),
                lang=_optional_str(record.get("lang")),
                origin=where,
            )


def corpus_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(
            p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in CORPUS_SUFFIXES and not p.name.startswith(".")
        )
    raise CorpusError(f"{path}: no such file or folder; give a corpus folder or a .jsonl file")


FILE_READERS = {
    **{suffix: read_markdown for suffix in MARKDOWN_SUFFIXES},
    **{suffix: read_html for suffix in HTML_SUFFIXES},
    **{suffix: read_text_file for suffix in TEXT_SUFFIXES},
}


def load_corpus(paths: Iterable[Path]) -> CorpusLoad:
    """Read every article under `paths`. Bad files are named in warnings and skipped."""
    load = CorpusLoad()
    seen: dict[str, str] = {}

    def accept(article: Article) -> None:
        if article.doc_id in seen:
            load.warnings.append(
                f"{article.origin}: id {article.doc_id!r} is already used by {seen[article.doc_id]}; skipped"
            )
            return
        seen[article.doc_id] = article.origin
        load.articles.append(article)

    for root in paths:
        for file in corpus_files(Path(root)):
            suffix = file.suffix.lower()
            if suffix in JSONL_SUFFIXES:
                for item in read_jsonl(file):
                    if isinstance(item, CorpusError):
                        load.warnings.append(str(item))
                    else:
                        accept(item)
            elif suffix in FILE_READERS:
                try:
                    accept(FILE_READERS[suffix](file))
                except CorpusError as error:
                    load.warnings.append(str(error))
            else:
                load.warnings.append(f"{file}: unsupported file type {suffix!r}; skipped")
    return load
