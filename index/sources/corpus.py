"""Reading articles from the corpus: Markdown with front matter, and JSON Lines for bulk imports."""

from __future__ import annotations

import codecs
import dataclasses
import datetime as dt
import errno
import hashlib
import json
import os
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import frontmatter
import yaml
from frontmatter.default_handlers import YAMLHandler

from index.errors import CorpusError
from index.sources.text import only_text

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


def shown(path: Path) -> str:
    """A path as text that can be printed and stored: bytes of a file name that are not UTF-8 are
    written as `\\xff` escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def slugify(value: str, max_length: int = 80) -> str:
    """A readable, stable id: lower-case ASCII words joined by dashes (other scripts are kept)."""
    value = unicodedata.normalize("NFKC", value).lower()
    value = re.sub(r"[^\w]+", "-", value, flags=re.UNICODE).strip("-_")
    # A name with no letters at all (or only bytes that were not UTF-8) still gets a stable id.
    name_bytes = value.encode("utf-8", "surrogatepass")
    return value[:max_length].rstrip("-") or hashlib.sha1(name_bytes, usedforsecurity=False).hexdigest()[:12]


def doc_id_from_url(url: str) -> str:
    """Stable id for an article known by its address: the last path part, plus a short hash."""
    path = re.sub(r"^[a-z]+://", "", url.strip().lower()).split("?")[0].rstrip("/")
    tail = slugify(path.rsplit("/", 1)[-1], max_length=60)
    digest = hashlib.sha1(url.strip().encode("utf-8"), usedforsecurity=False).hexdigest()[:8]
    return f"{tail}-{digest}"


def _iso_date(value: object) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    text = only_text(str(value)).strip()
    try:
        return dt.date.fromisoformat(text[:10]).isoformat()
    except ValueError:
        return text or None


def _optional_str(value: object) -> str | None:
    if value is None:
        return None
    text = only_text(str(value)).strip()
    return text or None


def _field(record: dict, name: str, where: str) -> object:
    """A front matter or JSON field, which must be one plain value (a list or mapping is a mistake)."""
    value = record.get(name)
    if isinstance(value, (list, dict, set, tuple)):
        raise CorpusError(f"{where}: `{name}` must be a single value, not a {type(value).__name__}; fix it")
    return value


def read_bytes(path: Path) -> bytes:
    try:
        with path.open("rb") as file:
            return file.read()
    except OSError as error:
        raise unreadable(path, error) from error


def unreadable(path: Path, error: OSError) -> CorpusError:
    return CorpusError(f"{shown(path)}: cannot be read ({error.strerror or error}); fix its permissions or remove it")


def decode_utf8(data: bytes, where: str, *, line_number: int | None = None) -> str:
    """`data` as text: UTF-8, with or without a byte order mark. Otherwise say which byte, where."""
    skipped = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[skipped:].decode("utf-8")
    except UnicodeDecodeError as error:
        at = skipped + error.start
        line_start = data.rfind(b"\n", 0, at) + 1
        line = line_number or data.count(b"\n", 0, at) + 1
        raise CorpusError(
            f"{where}: not UTF-8 text (byte 0x{data[at]:02x} on line {line}, column {at - line_start + 1}); "
            "save it as UTF-8 or remove it"
        ) from error


def normalise_text(text: str) -> str:
    """Unify line endings and trim; paragraph breaks (blank lines) are kept as they are. JSON and YAML
    escapes can spell lone surrogates (`\\udcff`), which no tokenizer takes: they are dropped."""
    return only_text(text).replace("\r\n", "\n").replace("\r", "\n").strip()


class _NoAliasLoader(yaml.SafeLoader):
    """YAML without aliases: `*name` can repeat a value exponentially (a "billion laughs" bomb)."""

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(
                None, None, "uses a YAML alias (*name); write the value out instead", self.peek_event().start_mark)
        return super().compose_node(parent, index)


class _FrontMatter(YAMLHandler):
    def load(self, fm: str, **kwargs: object) -> Any:  # a mapping, unless the front matter is something else
        return yaml.load(fm, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader without aliases


def read_markdown(path: Path) -> Article:
    where = shown(path)
    content = decode_utf8(read_bytes(path), where)
    try:
        post = frontmatter.loads(content, handler=_FrontMatter())
    except yaml.YAMLError as error:
        problem = getattr(error, "problem", None) or type(error).__name__
        raise CorpusError(f"{where}: broken front matter ({problem}); fix it or remove the file") from error
    except (ValueError, RecursionError) as error:
        raise CorpusError(f"{where}: broken front matter ({type(error).__name__}); fix it or remove the file") \
            from error
    meta = post.metadata
    if not isinstance(meta, dict):
        raise CorpusError(f"{where}: the front matter is not a mapping of fields")
    text = normalise_text(post.content)
    title = _optional_str(_field(meta, "title", where))
    if not title:
        raise CorpusError(f"{where}: the front matter has no `title`")
    if not text:
        raise CorpusError(f"{where}: the article has no text after its front matter")
    return Article(
        doc_id=slugify(path.stem),
        title=title,
        text=text,
        source=_optional_str(_field(meta, "source", where)),
        url=_optional_str(_field(meta, "url", where)),
        published=_iso_date(_field(meta, "published", where)),
        author=_optional_str(_field(meta, "author", where)),
        lang=_optional_str(_field(meta, "lang", where)),
        origin=where,
    )


def extract_html(html: str | bytes, *, url: str | None, doc_id: str, origin: str) -> Article:
    """The article in a web page: text, title, date, author and outlet, found by trafilatura."""
    import trafilatura

    if isinstance(html, bytes) and html.startswith(codecs.BOM_UTF8):
        html = html[len(codecs.BOM_UTF8):]
    elif isinstance(html, str):
        html = html.removeprefix("\ufeff")
    try:
        found = trafilatura.bare_extraction(
            html, url=url, with_metadata=True, include_comments=False, include_tables=False, favor_precision=True,
        )
    except Exception as error:  # a parser fed a hostile page: whatever it raises, this page is unreadable
        raise CorpusError(f"{origin}: the page could not be parsed ({type(error).__name__})") from error
    text = normalise_text(getattr(found, "text", None) or "") if found is not None else ""
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
        published=_iso_date(getattr(found, "date", None)) or page_date(html, url),
        author=_optional_str(getattr(found, "author", None)),
        lang=_optional_str(getattr(found, "language", None)),
        origin=origin,
    )


def page_date(html: str | bytes, url: str | None) -> str | None:
    """A page's date when trafilatura found no publication date: htmldate's best guess from the page and its
    address, a modification date included (better than none); None when the page gives no date at all."""
    import htmldate

    try:
        found = htmldate.find_date(html, url=url, extensive_search=True, original_date=False)
    except Exception:  # noqa: BLE001 - a hostile page: no date is the honest result
        return None
    return _iso_date(found) if found else None


def read_html(path: Path) -> Article:
    return extract_html(read_bytes(path), url=None, doc_id=slugify(path.stem), origin=shown(path))


def read_text_file(path: Path) -> Article:
    """Plain text: the first line is the title, the rest the article."""
    content = normalise_text(decode_utf8(read_bytes(path), shown(path)))
    title, _, body = content.partition("\n")
    if not title.strip() or not body.strip():
        raise CorpusError(f"{shown(path)}: needs a title on the first line and the article below it")
    return Article(doc_id=slugify(path.stem), title=title.strip(), text=body.strip(), origin=shown(path))


def article_markdown(article: Article, extra: dict[str, str] | None = None) -> str:
    """The article as a corpus file: YAML front matter (plus `extra` fields, e.g. the feed it came
    from, which reading ignores), then the text."""
    meta = {
        key: value
        for key, value in {
            "title": article.title, "url": article.url, "source": article.source,
            "published": article.published, "author": article.author, "lang": article.lang,
        }.items()
        if value
    } | dict(extra or {})
    front = yaml.safe_dump(meta, allow_unicode=True, sort_keys=False, width=1000)
    return f"---\n{front}---\n\n{article.text}\n"


def save_article(folder: Path, article: Article, extra: dict[str, str] | None = None) -> Path:
    """Write `article` as `<folder>/<doc_id>.md` atomically: a crash leaves no half-written file."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{article.doc_id}.md"
    staging = folder / f".{article.doc_id}.md.tmp"
    try:
        staging.write_text(article_markdown(article, extra), encoding="utf-8")
        os.replace(staging, path)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    return path


def read_jsonl(path: Path) -> Iterator[Article | CorpusError]:
    """One article a line; a bad line (or an unreadable file) is yielded as an error so the rest still load."""
    try:
        lines = path.open("rb")
    except OSError as error:
        yield unreadable(path, error)
        return
    with lines:
        for number, raw in enumerate(lines, start=1):
            where = f"{shown(path)}:{number}"
            try:
                line = decode_utf8(raw, where, line_number=number)
            except CorpusError as error:
                yield error
                continue
            if not line.strip():
                continue
            try:
                yield _jsonl_article(line, where)
            except CorpusError as error:
                yield error


def _jsonl_article(line: str, where: str) -> Article:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise CorpusError(f"{where}: not valid JSON ({error.msg})") from error
    except RecursionError as error:
        raise CorpusError(f"{where}: not valid JSON (nested too deeply)") from error
    if not isinstance(record, dict):
        raise CorpusError(f"{where}: expected an object per line")
    text = normalise_text(str(_field(record, "text", where) or ""))
    url = _optional_str(_field(record, "url", where))
    raw_id = _optional_str(_field(record, "id", where))
    doc_id = raw_id or (doc_id_from_url(url) if url else None)
    if not doc_id:
        raise CorpusError(f"{where}: needs an `id` or a `url`")
    if not text:
        raise CorpusError(f"{where}: has no `text`")
    return Article(
        doc_id=doc_id,
        title=_optional_str(_field(record, "title", where)) or doc_id,
        text=text,
        source=_optional_str(_field(record, "source", where)),
        url=url,
        published=_iso_date(_field(record, "published_at", where) or _field(record, "published", where)),
        author=_optional_str(_field(record, "author", where)),
        lang=_optional_str(_field(record, "lang", where)),
        origin=where,
    )


def corpus_files(path: Path, warnings: list[str]) -> list[Path]:
    """The corpus files under `path`; links that lead nowhere and special files are named in `warnings`."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise CorpusError(f"{shown(path)}: no such file or folder; give a corpus folder or a .jsonl file")
    files = []
    for candidate in sorted(path.rglob("*")):
        if candidate.suffix.lower() not in CORPUS_SUFFIXES or candidate.name.startswith("."):
            continue
        if candidate.is_file():
            files.append(candidate)
        elif candidate.is_symlink() and not candidate.exists():
            warnings.append(
                f"{shown(candidate)}: a symbolic link that {_dead_link(candidate)}; skipped (fix or remove it)")
        elif not candidate.is_dir():
            warnings.append(f"{shown(candidate)}: not a regular file (a pipe, socket or device); skipped")
    return files


def _dead_link(link: Path) -> str:
    try:
        link.resolve(strict=True)
    except (RuntimeError, OSError) as error:
        if isinstance(error, RuntimeError) or getattr(error, "errno", None) == errno.ELOOP:
            return "loops back on itself"
    return "points to nothing (broken)"


def cut_to_length(text: str, max_chars: int) -> str:
    """The start of `text`, at most `max_chars` long, ending at a paragraph or sentence end when one is
    in the second half (else at a space, else mid-word)."""
    if len(text) <= max_chars:
        return text
    head = text[:max_chars]
    floor = max_chars // 2
    paragraph = head.rfind("\n\n", floor)
    if paragraph != -1:
        return head[:paragraph].rstrip()
    sentence_ends = [match.end() for match in _SENTENCE_END.finditer(head, floor)]
    if sentence_ends:
        return head[:sentence_ends[-1]].rstrip()
    space = head.rfind(" ", floor)
    return (head[:space] if space != -1 else head).rstrip()


_SENTENCE_END = re.compile(r"[.!?\u2026\u3002\uff01\uff1f\u061f][\"'\u201d\u2019)\]]*(?=\s)")


FILE_READERS = {
    **{suffix: read_markdown for suffix in MARKDOWN_SUFFIXES},
    **{suffix: read_html for suffix in HTML_SUFFIXES},
    **{suffix: read_text_file for suffix in TEXT_SUFFIXES},
}


def load_corpus(paths: Iterable[Path], *, max_article_chars: int | None = None) -> CorpusLoad:
    """Read every article under `paths`. Bad files are named in warnings and skipped; an article longer
    than `max_article_chars` (None: no limit) is cut to it, with a warning."""
    load = CorpusLoad()
    seen: dict[str, str] = {}

    def accept(article: Article) -> None:
        if article.doc_id in seen:
            load.warnings.append(
                f"{article.origin}: id {article.doc_id!r} is already used by {seen[article.doc_id]}; skipped"
            )
            return
        if max_article_chars is not None and len(article.text) > max_article_chars:
            kept = cut_to_length(article.text, max_article_chars)
            load.warnings.append(
                f"{article.origin}: {len(article.text):,} characters, more than MAX_ARTICLE_CHARS "
                f"({max_article_chars:,}); only the first {len(kept):,} are indexed"
            )
            article = dataclasses.replace(article, text=kept)
        seen[article.doc_id] = article.origin
        load.articles.append(article)

    for root in paths:
        for file in corpus_files(Path(root), load.warnings):
            suffix = file.suffix.lower()
            if suffix in JSONL_SUFFIXES:
                items = list(read_jsonl(file))
                for item in items:
                    if isinstance(item, CorpusError):
                        load.warnings.append(str(item))
                    else:
                        accept(item)
                if not items:
                    load.warnings.append(f"{shown(file)}: no articles in it (the file is empty); skipped")
            elif suffix in FILE_READERS:
                try:
                    accept(FILE_READERS[suffix](file))
                except CorpusError as error:
                    load.warnings.append(str(error))
            else:
                load.warnings.append(f"{shown(file)}: unsupported file type {suffix!r}; skipped")
    return load
