from pathlib import Path

from index.sources.corpus import load_corpus, read_markdown
from tests.conftest import SEED_ARTICLE


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_seed_article_front_matter_is_read():
    article = read_markdown(SEED_ARTICLE)
    assert article.doc_id == "syria-vows-accountability"
    assert article.source == "The Times of Israel"
    assert article.published == "2025-03-09"
    assert article.url.startswith("https://www.timesofisrael.com/")
    assert "973 civilians" in article.text
    assert not article.text.startswith("---")


def test_broken_front_matter_is_named_and_skipped(tmp_path):
    write(tmp_path / "good.md", "---\ntitle: Good\nsource: Outlet\n---\nA sentence. Another one.\n")
    write(tmp_path / "broken.md", "---\ntitle: [unclosed\nsource: x\n---\nText.\n")
    write(tmp_path / "untitled.md", "---\nsource: x\n---\nText.\n")
    load = load_corpus([tmp_path])
    assert [a.doc_id for a in load.articles] == ["good"]
    assert any("broken.md" in w and "front matter" in w for w in load.warnings)
    assert any("untitled.md" in w and "title" in w for w in load.warnings)


def test_jsonl_lines_load_and_bad_lines_are_reported(tmp_path):
    file = write(
        tmp_path / "bulk.jsonl",
        '{"id": "a1", "title": "One", "text": "First text.", "published_at": "2024-01-02T10:00:00Z"}\n'
        "not json\n"
        '{"title": "No id", "text": "x", "url": "https://example.org/news/story-1"}\n'
        '{"id": "a3", "title": "Empty", "text": ""}\n',
    )
    load = load_corpus([file])
    ids = [a.doc_id for a in load.articles]
    assert ids[0] == "a1" and load.articles[0].published == "2024-01-02"
    assert ids[1].startswith("story-1-")  # derived from the URL
    assert any("bulk.jsonl:2" in w for w in load.warnings)
    assert any("bulk.jsonl:4" in w and "text" in w for w in load.warnings)


def test_ids_are_stable_across_loads(tmp_path):
    write(tmp_path / "bulk.jsonl", '{"title": "T", "text": "x", "url": "https://example.org/a/b"}\n')
    first = load_corpus([tmp_path]).articles[0].doc_id
    second = load_corpus([tmp_path]).articles[0].doc_id
    assert first == second


def test_missing_corpus_path_is_a_clear_error(tmp_path):
    import pytest

    from index.errors import CorpusError

    with pytest.raises(CorpusError, match="no such file or folder"):
        load_corpus([tmp_path / "nowhere"])


# ---------------------------------------------------------------- bad files (issue 10)

GOOD_MD = "---\ntitle: Good\nsource: Outlet\n---\nA sentence about the council. Another one.\n"
BOM = "\ufeff"


def warning_about(load, name: str) -> str:
    found = [w for w in load.warnings if name in w]
    assert found, f"no warning names {name}: {load.warnings}"
    return found[0]


def test_a_byte_order_mark_does_not_hide_the_title(tmp_path):
    write(tmp_path / "bom.md", BOM + "---\ntitle: With a BOM\n---\nThe text.\n")
    write(tmp_path / "bulk.jsonl", BOM + '{"id": "j1", "title": "Line one", "text": "First."}\n'
          + '{"id": "j2", "title": "Line two", "text": "Second."}\n')
    load = load_corpus([tmp_path])
    assert load.warnings == []
    assert {a.doc_id: a.title for a in load.articles} == {"bom": "With a BOM", "j1": "Line one", "j2": "Line two"}


def test_a_byte_order_mark_is_stripped_in_each_format(tmp_path):
    for name, content in {
        "a.txt": BOM + "Plain title\nThe text of a plain file.\n",
        "b.html": BOM + "<html><head><title>Page title</title></head><body><article><p>"
                  + "The council voted to close the bridge for repairs next week. " * 5
                  + "</p></article></body></html>",
    }.items():
        write(tmp_path / name, content)
    load = load_corpus([tmp_path])
    assert load.warnings == []
    titles = {a.doc_id: a.title for a in load.articles}
    assert titles == {"a": "Plain title", "b": "Page title"}


def test_a_symlink_loop_and_a_broken_symlink_are_named(tmp_path):
    write(tmp_path / "good.md", GOOD_MD)
    (tmp_path / "loop.md").symlink_to("loop.md")
    (tmp_path / "gone.md").symlink_to("nowhere.md")
    load = load_corpus([tmp_path])
    assert [a.doc_id for a in load.articles] == ["good"]
    assert "symbolic link" in warning_about(load, "loop.md")
    assert "symbolic link" in warning_about(load, "gone.md")


def test_an_unreadable_file_is_named_and_the_rest_indexed(tmp_path, monkeypatch):
    write(tmp_path / "good.md", GOOD_MD)
    write(tmp_path / "secret.md", GOOD_MD)
    write(tmp_path / "secret.jsonl", '{"id": "s", "text": "x"}\n')
    real_open = Path.open

    def refuse(self, *args, **kwargs):
        if self.name.startswith("secret"):
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", refuse)
    load = load_corpus([tmp_path])
    assert [a.doc_id for a in load.articles] == ["good"]
    assert "Permission denied" in warning_about(load, "secret.md")
    assert "Permission denied" in warning_about(load, "secret.jsonl")


def test_latin1_jsonl_lines_are_named_with_line_and_byte_the_rest_load(tmp_path):
    (tmp_path / "bulk.jsonl").write_bytes(
        b'{"id": "a1", "title": "One", "text": "First text."}\n'
        + '{"id": "a2", "title": "Caf\u00e9", "text": "Second."}\n'.encode("latin-1")
        + b'{"id": "a3", "title": "Three", "text": "Third text."}\n'
    )
    load = load_corpus([tmp_path])
    assert [a.doc_id for a in load.articles] == ["a1", "a3"]
    warning = warning_about(load, "bulk.jsonl:2")
    assert "UTF-8" in warning and "0xe9" in warning and "column 27" in warning


def test_a_latin1_markdown_file_is_named_with_the_byte(tmp_path):
    write(tmp_path / "good.md", GOOD_MD)
    (tmp_path / "latin.md").write_bytes("---\ntitle: Caf\u00e9\n---\nText.\n".encode("latin-1"))
    (tmp_path / "latin.txt").write_bytes("Caf\u00e9\nText.\n".encode("latin-1"))
    load = load_corpus([tmp_path])
    assert [a.doc_id for a in load.articles] == ["good"]
    assert "UTF-8" in warning_about(load, "latin.md") and "0xe9" in warning_about(load, "latin.md")
    assert "line 2" in warning_about(load, "latin.md")
    assert "0xe9" in warning_about(load, "latin.txt") and "line 1" in warning_about(load, "latin.txt")


BILLION_LAUGHS = """---
title: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
source: *i
author: *i
---
Text.
"""


def test_a_yaml_alias_bomb_is_refused_within_a_second(tmp_path):
    import time

    write(tmp_path / "good.md", GOOD_MD)
    write(tmp_path / "bomb.md", BILLION_LAUGHS)
    assert len(BILLION_LAUGHS) < 1024
    started = time.perf_counter()
    load = load_corpus([tmp_path])
    assert time.perf_counter() - started < 1.0
    assert [a.doc_id for a in load.articles] == ["good"]
    assert "alias" in warning_about(load, "bomb.md")


def test_front_matter_fields_must_be_plain_values(tmp_path):
    write(tmp_path / "listy.md", "---\ntitle: [one, two]\n---\nText.\n")
    write(tmp_path / "nested.md", "---\ntitle: Fine\nsource: {a: 1}\n---\nText.\n")
    load = load_corpus([tmp_path])
    assert load.articles == []
    assert "title" in warning_about(load, "listy.md")
    assert "source" in warning_about(load, "nested.md")


def test_an_over_long_article_is_cut_at_a_paragraph_with_a_warning(tmp_path):
    paragraph = "The council met again. " * 40  # 920 characters
    write(tmp_path / "huge.md", "---\ntitle: Huge\n---\n" + "\n\n".join([paragraph.strip()] * 200))
    write(tmp_path / "small.md", GOOD_MD)
    load = load_corpus([tmp_path], max_article_chars=10_000)
    articles = {a.doc_id: a for a in load.articles}
    huge = articles["huge"].text
    assert 9_000 <= len(huge) <= 10_000 and huge.endswith("The council met again.")
    assert articles["small"].text == "A sentence about the council. Another one."
    warning = warning_about(load, "huge.md")
    assert "10,000" in warning and "MAX_ARTICLE_CHARS" in warning


def test_an_over_long_article_without_paragraphs_is_cut_at_a_sentence(tmp_path):
    write(tmp_path / "bulk.jsonl", '{"id": "long", "text": "' + "One more sentence here. " * 1000 + '"}\n')
    load = load_corpus([tmp_path], max_article_chars=5_000)
    text = load.articles[0].text
    assert len(text) <= 5_000 and text.endswith("sentence here.")
    assert "bulk.jsonl:1" in load.warnings[0]


def test_every_kind_of_bad_file_is_named_while_the_rest_loads(tmp_path):
    write(tmp_path / "good.md", GOOD_MD)
    write(tmp_path / "also-good.txt", "A plain title\nThe council voted again.\n")
    write(tmp_path / "bom.md", BOM + "---\ntitle: BOM title\n---\nThe council voted a third time.\n")
    (tmp_path / "loop.md").symlink_to("loop.md")
    (tmp_path / "gone.md").symlink_to("nowhere.md")
    (tmp_path / "latin.jsonl").write_bytes('{"id": "l", "title": "Caf\u00e9", "text": "x"}\n'.encode("latin-1"))
    write(tmp_path / "bomb.md", BILLION_LAUGHS)
    write(tmp_path / "huge.md", "---\ntitle: Huge\n---\n" + "A long sentence about the bridge. " * 2000)
    (tmp_path / "binary.md").write_bytes(bytes(range(256)) * 4)
    load = load_corpus([tmp_path], max_article_chars=20_000)
    assert sorted(a.doc_id for a in load.articles) == ["also-good", "bom", "good", "huge"]
    for name in ["loop.md", "gone.md", "latin.jsonl:1", "bomb.md", "huge.md", "binary.md"]:
        warning_about(load, name)


def test_a_real_build_names_every_bad_file_and_indexes_the_rest(tmp_path, encoders, monkeypatch):
    from index.engine import Engine
    from index.store.build import build_index
    from tests.conftest import make_settings

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write(corpus / "syria.md", SEED_ARTICLE.read_text(encoding="utf-8"))
    write(corpus / "bom.md", BOM + "---\ntitle: Bridge closure\n---\nThe council voted 7 to 2 to close the bridge.\n")
    (corpus / "loop.md").symlink_to("loop.md")
    (corpus / "gone.md").symlink_to("nowhere.md")
    (corpus / "latin.jsonl").write_bytes(
        '{"id": "caf", "title": "Caf\u00e9", "text": "x"}\n'.encode("latin-1")
        + b'{"id": "ferry", "title": "Ferry", "text": "The ferry to the island runs twice a day."}\n')
    write(corpus / "bomb.md", BILLION_LAUGHS)
    write(corpus / "secret.md", GOOD_MD)
    write(corpus / "huge.md", "---\ntitle: Huge\n---\n" + "The harbour wall was rebuilt in stone. " * 1000)
    real_open = Path.open

    def refuse(self, *args, **kwargs):
        if self.name == "secret.md":
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", refuse)
    settings = make_settings(tmp_path, corpus, max_article_chars=2_000)
    report = build_index(settings, encoders=encoders)
    assert report.documents == 4  # syria (cut to 2,000 characters too), bom, ferry, huge
    for name in ["loop.md", "gone.md", "latin.jsonl:1", "bomb.md", "secret.md", "huge.md"]:
        assert any(name in w for w in report.warnings), (name, report.warnings)
    engine = Engine.load(settings, encoders=encoders)
    assert {d.doc_id for d in engine.sources()} == {"syria", "bom", "ferry", "huge"}
    assert engine.source("bom").title == "Bridge closure"
    assert len(engine.article_text("huge")) <= 2_000


def test_lone_surrogates_escaped_in_json_or_yaml_are_dropped(tmp_path):
    write(tmp_path / "bulk.jsonl", '{"id": "s\\udcff", "title": "Bridge \\ud800closed", '
                                   '"text": "The bridge \\udfffis closed. \\ud83d\\ude00"}\n')
    write(tmp_path / "yaml.md", '---\ntitle: "Ferry \\uDCFFdelayed"\nsource: "Out\\uD800let"\n---\n'
                                "The ferry is delayed.\n")
    load = load_corpus([tmp_path])
    assert load.warnings == []
    articles = {a.doc_id: a for a in load.articles}
    assert articles["s"].title == "Bridge closed"
    assert articles["s"].text == "The bridge is closed. \U0001F600"
    assert articles["yaml"].title == "Ferry delayed" and articles["yaml"].source == "Outlet"
    for article in load.articles:
        assert len(article.content_hash) == 64  # encodes every field as UTF-8: raised on a lone surrogate


def test_a_title_or_text_of_only_surrogates_counts_as_missing(tmp_path):
    write(tmp_path / "bulk.jsonl", '{"id": "a", "title": "T", "text": "\\udcff\\ud800"}\n')
    write(tmp_path / "empty-title.md", '---\ntitle: "\\uDCFF"\n---\nText.\n')
    load = load_corpus([tmp_path])
    assert load.articles == []
    assert "text" in warning_about(load, "bulk.jsonl:1")
    assert "title" in warning_about(load, "empty-title.md")


def test_file_names_that_are_not_utf8_load_and_are_shown_escaped(tmp_path):
    import os

    folder = os.fsencode(tmp_path)
    with open(folder + b"/caf\xe9.md", "wb") as file:
        file.write(GOOD_MD.encode())
    with open(folder + b"/\xff\xfe.txt", "wb") as file:
        file.write(b"A title\nA text.\n")
    with open(folder + b"/bad\xff.md", "wb") as file:
        file.write(b"---\nsource: x\n---\nText.\n")
    load = load_corpus([tmp_path])
    origins = sorted(a.origin for a in load.articles)
    assert [Path(o).name for o in origins] == ["\\xff\\xfe.txt", "caf\\xe9.md"]
    assert all(o.encode("utf-8") for o in origins)  # printable and storable
    assert {a.doc_id for a in load.articles} >= {"caf"} and len(load.articles) == 2
    assert "bad\\xff.md" in warning_about(load, "bad\\xff.md")


def test_an_empty_jsonl_file_is_named(tmp_path):
    write(tmp_path / "empty.jsonl", "\n  \n")
    load = load_corpus([tmp_path])
    assert load.articles == [] and "empty" in warning_about(load, "empty.jsonl")
