from pathlib import Path

from index.corpus import load_corpus, read_markdown

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
