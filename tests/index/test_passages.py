from itertools import pairwise

import pytest

from index.sources.corpus import Article, read_markdown
from index.sources.passages import sentence_spans, split_article
from tests.conftest import SEED_ARTICLE

ARABIC = (
    "حمزة بن عبد المطلب صحابي من صحابة رسول الإسلام محمد. وهو خير أعمامه لقوله: «خَيْرُ إِخْوَتِي عَلِيٌّ». "
    "ثم هاجر حمزة إلى المدينة المنورة؟ نعم، وشهد غزوة بدر.\n\nقتل في غزوة أحد سنة 3هـ."
)
ABBREVIATIONS = (
    "U.S. Secretary of State Marco Rubio spoke on Monday. Dr. Smith arrived at 3 p.m. with the U.N. team.\n\n"
    "“We will hold firmly,” he said. A very long sentence follows " + "with many words " * 120 + "and ends here."
)


@pytest.fixture(params=["seed", "arabic", "abbreviations"])
def article(request, encoders):
    if request.param == "seed":
        return read_markdown(SEED_ARTICLE)
    text = ARABIC if request.param == "arabic" else ABBREVIATIONS
    return Article(doc_id=request.param, title=request.param, text=text,
                   lang="ar" if request.param == "arabic" else None)


@pytest.mark.parametrize("max_tokens", [24, 64, 128])
def test_passages_hold_whole_sentences_and_their_offsets(article, encoders, max_tokens):
    spans = sentence_spans(article.text, article.lang)
    boundaries_start = {s.start for s in spans}
    boundaries_end = {s.end for s in spans}
    passages = split_article(article, encoders.dense.count_tokens, max_tokens, overlap_sentences=1)
    assert passages
    for passage in passages:
        assert article.text[passage.start : passage.end] == passage.text
        assert passage.start in boundaries_start and passage.end in boundaries_end
        assert all(s.start in boundaries_start and s.end in boundaries_end for s in passage.sentences)
        tokens = encoders.dense.count_tokens([passage.text])[0]
        assert tokens <= max_tokens + 2 or len(passage.sentences) == 1  # +2: joins between sentences
    covered = {s for p in passages for s in p.sentences}
    assert covered == set(spans), "every sentence is in some passage"


def test_sentences_are_not_split_at_abbreviations():
    spans = sentence_spans(ABBREVIATIONS)
    texts = [ABBREVIATIONS[s.start : s.end] for s in spans]
    assert texts[0] == "U.S. Secretary of State Marco Rubio spoke on Monday."
    assert texts[1].startswith("Dr. Smith arrived")


def test_a_sentence_longer_than_the_window_stays_whole(encoders):
    article = Article(doc_id="long", title="long", text=ABBREVIATIONS)
    passages = split_article(article, encoders.dense.count_tokens, 32, overlap_sentences=0)
    longest = max(passages, key=lambda p: len(p.text))
    assert longest.text.startswith("A very long sentence") and longest.text.endswith("and ends here.")


def test_neighbouring_passages_overlap_by_one_sentence(encoders):
    article = read_markdown(SEED_ARTICLE)
    passages = split_article(article, encoders.dense.count_tokens, 64, overlap_sentences=1)
    shared = 0
    for before, after in pairwise(passages):
        if len(before.sentences) > 1:  # a lone sentence is not repeated, or no passage would advance
            assert after.sentences[0] == before.sentences[-1]
            shared += 1
        else:
            assert after.sentences[0].start > before.sentences[-1].start
    assert shared >= 3
    assert [p.passage_id for p in passages] == [f"syria-vows-accountability#{i}" for i in range(len(passages))]
