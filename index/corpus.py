"""Reading articles from the corpus: Markdown with front matter, and JSON Lines for bulk imports."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
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
CORPUS_SUFFIXES = MARKDOWN_SUFFIXES | JSONL_SUFFIXES


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
            elif suffix in MARKDOWN_SUFFIXES:
                try:
                    accept(read_markdown(file))
                except CorpusError as error:
                    load.warnings.append(str(error))
            else:
                load.warnings.append(f"{file}: unsupported file type {suffix!r}; skipped")
    return load
