"""Retrieval: fusion arithmetic, document aggregation, duplicates, hybrid vs single lists, the reranker path."""

from __future__ import annotations

import numpy as np
import pytest

from index.retrieval.search import (
    aggregate_documents,
    near_duplicate,
    reciprocal_rank_fusion,
    weighted_fusion,
)
from tests.index.quality_support import build_engine, write_jsonl

# ---------------------------------------------------------------- fusion arithmetic


def test_reciprocal_rank_fusion_adds_one_over_k_plus_rank():
    dense = [(1, 0.9), (2, 0.8), (3, 0.7)]
    bm25 = [(3, 12.0), (4, 9.0)]
    fused = dict(reciprocal_rank_fusion([dense, bm25], k=60))
    assert fused[1] == pytest.approx(1 / 61)
    assert fused[2] == pytest.approx(1 / 62)
    assert fused[3] == pytest.approx(1 / 63 + 1 / 61)
    assert fused[4] == pytest.approx(1 / 62)
    # Found by both lists beats first in one list.
    assert [row for row, _ in reciprocal_rank_fusion([dense, bm25], k=60)][0] == 3


def test_reciprocal_rank_fusion_weights_scale_each_list():
    dense = [(1, 0.9), (2, 0.8)]
    bm25 = [(2, 5.0), (1, 4.0)]
    fused = reciprocal_rank_fusion([dense, bm25], k=10, weights=[2.0, 1.0])
    assert fused[0] == (1, pytest.approx(2 / 11 + 1 / 12))
    assert fused[1] == (2, pytest.approx(2 / 12 + 1 / 11))
    # A small k makes the top of each list count for more.
    assert reciprocal_rank_fusion([[(7, 1.0)]], k=1)[0][1] == pytest.approx(0.5)


def test_weighted_fusion_min_max_normalises_each_list():
    dense = [(1, 0.9), (2, 0.7), (3, 0.5)]
    bm25 = [(3, 20.0), (2, 10.0), (4, 0.0)]
    fused = dict(weighted_fusion([dense, bm25], [0.5, 0.5]))
    assert fused[1] == pytest.approx(0.5 * 1.0)
    assert fused[2] == pytest.approx(0.5 * 0.5 + 0.5 * 0.5)
    assert fused[3] == pytest.approx(0.5 * 0.0 + 0.5 * 1.0)
    assert fused[4] == pytest.approx(0.0)
    assert weighted_fusion([[], [(5, 3.0)]], [1.0, 1.0]) == [(5, 0.0)]


def test_sum_aggregation_lifts_a_document_with_several_matching_passages():
    fused = [(10, 0.05), (20, 0.04), (21, 0.03), (11, 0.001), (30, 0.02)]
    doc_of = {10: "a", 11: "a", 20: "b", 21: "b", 30: "c"}
    assert aggregate_documents(fused, doc_of, "max") == fused
    assert [row for row, _ in aggregate_documents(fused, doc_of, "sum")] == [20, 21, 10, 11, 30]


def test_near_duplicates():
    a = frozenset("syria interim president pledged accountability investigation killings alawite civilians".split())
    assert near_duplicate(a, a, 0.9)
    assert near_duplicate(a, a | {"extra"}, 0.9)  # one passage holds the other
    assert not near_duplicate(a, frozenset(list(a)[:4]) | {"x", "y", "z", "w"}, 0.9)


# ---------------------------------------------------------------- on a real index

# Each document is found through a different kind of match: words only BM25 can rely on (a code and a
# rare name) or a paraphrase only the embedder can see.
CORPUS = [
    {"id": "recall", "title": "Product recall",
     "text": "The regulator ordered the recall of batch XK-4471 of infant formula on Tuesday. "
             "Parents were told to return the tins to the shop."},
    {"id": "storm", "title": "Storm damage",
     "text": "A powerful storm tore the roofs off dozens of houses overnight. "
             "Falling trees blocked several roads and cut the power to thousands of homes."},
    {"id": "strike", "title": "Rail strike",
     "text": "Train drivers walked out for 24 hours over pay. Commuters faced cancelled services across the region."},
    {"id": "museum", "title": "Museum reopens",
     "text": "The city museum reopened after a two-year renovation. Its new wing shows paintings by Zoltan Kemeny."},
    {"id": "copy", "title": "Storm damage (wire copy)",
     "text": "A powerful storm tore the roofs off dozens of houses overnight. "
             "Falling trees blocked several roads and cut the power to thousands of homes, officials said."},
]


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory):
    return write_jsonl(tmp_path_factory.mktemp("retrieval") / "corpus.jsonl", CORPUS)


@pytest.fixture(scope="module")
def engine(corpus_file, tmp_path_factory, encoders):
    return build_engine(corpus_file, tmp_path_factory.mktemp("retrieval-index"), encoders)


def _docs(hits):
    return [h.doc_id for h in hits]


PARAPHRASE = "wind knocked down buildings and left people without electricity"


def test_bm25_finds_codes_and_names_and_the_dense_model_finds_paraphrases(engine):
    engine.settings.retrieval = "bm25"
    try:
        assert _docs(engine.search("XK-4471"))[0] == "recall"
        assert _docs(engine.search("Kemeny"))[0] == "museum"
        # No word of the paraphrase is in the storm story: BM25 cannot put it first.
        assert _docs(engine.search(PARAPHRASE))[:1] != ["storm"]
        engine.settings.retrieval = "dense"
        assert _docs(engine.search(PARAPHRASE))[0] in {"storm", "copy"}
    finally:
        engine.settings.retrieval = "hybrid"


@pytest.mark.parametrize("fusion", ["rrf", "weighted"])
def test_hybrid_gets_both_kinds_of_match_first(engine, fusion):
    engine.settings.fusion = fusion
    try:
        assert _docs(engine.search("XK-4471"))[0] == "recall"
        assert _docs(engine.search("Kemeny"))[0] == "museum"
        assert _docs(engine.search(PARAPHRASE))[0] in {"storm", "copy"}
    finally:
        engine.settings.fusion = "rrf"


def test_near_identical_passages_filed_twice_are_shown_once(engine):
    hits = engine.search("storm roofs houses power", k=5)
    storm_like = [h for h in hits if h.doc_id in {"storm", "copy"}]
    assert len(storm_like) == 1
    # At 1.0 only passages with exactly the same words collapse: the copy with two more words comes back.
    engine.settings.duplicate_threshold = 1.0
    try:
        hits = engine.search("storm roofs houses power", k=5)
        assert len([h for h in hits if h.doc_id in {"storm", "copy"}]) == 2
    finally:
        engine.settings.duplicate_threshold = 0.9


def test_every_hit_has_its_exact_similarity_to_the_question(engine):
    hits = engine.search("Kemeny paintings", k=4)
    assert len(hits) == 4
    vector = engine.encoders.dense.encode_queries(["Kemeny paintings"])[0]
    for hit in hits:
        # A passage's vector is its sentences' vectors averaged by their token counts.
        sentences = [hit.text[s.start - hit.passage.start:s.end - hit.passage.start] for s in hit.passage.sentences]
        weights = np.asarray(engine.encoders.dense.count_tokens(sentences), dtype=np.float32)
        pooled = (weights[:, None] * engine.encoders.dense.encode_passages(sentences)).sum(axis=0)
        passage = pooled / np.linalg.norm(pooled)
        assert hit.similarity == pytest.approx(float(passage @ vector), abs=1e-4)


def test_a_document_filter_keeps_to_that_document(engine):
    assert set(_docs(engine.search("storm", doc_id="strike"))) == {"strike"}


def test_an_index_opened_without_its_search_indexes_is_refused_by_name(engine):
    from index.retrieval.search import Searcher
    from index.store.files import StoredIndex

    bare = StoredIndex(engine.stored.folder, searchable=False)
    try:
        with pytest.raises(ValueError, match="searchable=False"):
            Searcher(bare, engine.encoders, engine.settings)
    finally:
        bare.close()


# ---------------------------------------------------------------- the reranker code path


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory):
    """A two-layer cross-encoder made here from a random initialisation and MiniLM's vocabulary: no
    download, and scores that are its own (not meaningful, but deterministic)."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from index.embedders import packaged_minilm_path

    folder = tmp_path_factory.mktemp("tiny-cross-encoder")
    tokenizer = AutoTokenizer.from_pretrained(str(packaged_minilm_path()))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512, num_labels=1)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_a_configured_reranker_reorders_the_fused_candidates_by_its_scores(engine, tiny_cross_encoder):
    from index.retrieval.search import load_reranker

    query = "storm damage and power cuts"
    engine.settings.reranker_model = str(tiny_cross_encoder)
    try:
        hits = engine.search(query, k=4)
    finally:
        engine.settings.reranker_model = None
    assert len(hits) == 4
    reranker = load_reranker(str(tiny_cross_encoder))
    expected = reranker.score(query, [h.text for h in hits])
    assert [h.score for h in hits] == pytest.approx(sorted(expected.tolist(), reverse=True), abs=1e-5)
    assert [h.score for h in hits] == pytest.approx(expected.tolist(), abs=1e-5)
    # The answer path runs through it too, and still quotes verbatim.
    engine.settings.reranker_model = str(tiny_cross_encoder)
    try:
        answer = engine.ask("What did the storm do?")
    finally:
        engine.settings.reranker_model = None
    assert answer.citations
    for citation in answer.citations:
        assert engine.article_text(citation.doc_id)[citation.start:citation.end] == citation.quote
