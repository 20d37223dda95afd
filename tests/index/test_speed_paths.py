"""The fast paths: the ONNX embedder against torch, approximate vector indexes, memory-mapped loading."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import faiss
import numpy as np
import pytest

from index import embedders
from index.embedders import SentenceTransformerEncoder
from index.settings import Settings
from index.store.vectors import (
    ApproximateIndex,
    VectorIndexPolicy,
    build_vector_index,
    describe_vector_index,
    load_vector_index,
    save_vector_index,
)
from tests.conftest import MODEL_CACHE

PASSAGES = [
    "The ministry said 14 people had died and 37 were injured in the explosion on Tuesday.",
    "Rainfall reached 240 mm in a day, and rivers burst their banks across the north of the country.",
    "Talks in Geneva ended without agreement on the ceasefire lines or the exchange of prisoners.",
    "Prices rose 3.2 % in March, the central bank said, the fastest rise in more than a decade.",
    "The mayor, who took office in January, promised to rebuild the bridge before the winter.",
]
QUESTIONS = ["ok", "who won", "How many people died?", "What did the ministry say about the explosion?"]


@pytest.fixture(scope="module")
def torch_encoder() -> SentenceTransformerEncoder:
    return SentenceTransformerEncoder("all-MiniLM-L6-v2", backend="torch")


@pytest.fixture(scope="module")
def int8_encoder() -> SentenceTransformerEncoder:
    # The data folder's cache, as the app uses it: exported once per machine, then reused.
    cache = Settings(_env_file=None).data_dir / "models"
    return SentenceTransformerEncoder("all-MiniLM-L6-v2", backend="onnx-int8", cache_dir=cache)


def test_the_default_backend_is_onnx_with_torch_s_vectors(torch_encoder):
    assert Settings(_env_file=None).embedding_backend == "onnx"
    cache = Settings(_env_file=None).data_dir / "models"
    encoder = SentenceTransformerEncoder("all-MiniLM-L6-v2", backend="onnx", cache_dir=cache)
    assert encoder.backend == "onnx", encoder.backend_note
    assert np.allclose(encoder.encode_passages(PASSAGES), torch_encoder.encode_passages(PASSAGES), atol=1e-4)
    assert np.allclose(encoder.encode_queries(QUESTIONS), torch_encoder.encode_queries(QUESTIONS), atol=1e-4)


def test_onnx_int8_agrees_with_torch(torch_encoder, int8_encoder):
    assert int8_encoder.backend == "onnx-int8", int8_encoder.backend_note
    # Passages go through the int8 network, questions through the fp32 one.
    passages = np.sum(torch_encoder.encode_passages(PASSAGES) * int8_encoder.encode_passages(PASSAGES), axis=1)
    assert passages.mean() >= 0.99 and passages.min() >= 0.98
    questions = np.sum(torch_encoder.encode_queries(QUESTIONS) * int8_encoder.encode_queries(QUESTIONS), axis=1)
    assert questions.min() >= 0.999
    assert np.allclose(np.linalg.norm(int8_encoder.encode_passages(PASSAGES), axis=1), 1.0, atol=1e-4)
    # The public surface is the torch encoder's.
    for attribute in ("dimension", "max_tokens", "name"):
        assert getattr(int8_encoder, attribute) == getattr(torch_encoder, attribute)
    assert int8_encoder.count_tokens(PASSAGES) == torch_encoder.count_tokens(PASSAGES)
    assert int8_encoder.encode_passages([]).shape == (0, 384)
    assert min(int8_encoder.onnx_cosine.values()) >= 0.99


def test_passages_come_back_in_order_though_encoded_longest_first(int8_encoder):
    texts = [PASSAGES[i % len(PASSAGES)] + " " * (i % 3) for i in range(300)]  # more than one chunk
    seen = []
    together = int8_encoder.encode_passages(texts, progress=lambda done, total: seen.append((done, total)))
    one_by_one = np.vstack([int8_encoder.encode_passages([text]) for text in texts[:6]])
    # Dynamic quantisation scales each batch as a whole, so batch mates move a vector a little.
    similarity = together[:6] @ one_by_one.T
    assert (similarity.argmax(axis=1) % 5 == np.arange(6) % 5).all()
    assert np.diag(similarity).min() >= 0.99
    assert seen[-1] == (300, 300)


def test_the_export_is_cached_and_reused(int8_encoder, monkeypatch):
    cache = Settings(_env_file=None).data_dir / "models" / "onnx"
    assert any((folder / "model_int8.onnx").is_file() for folder in cache.iterdir())

    def no_export(*args, **kwargs):
        raise AssertionError("exported again")

    monkeypatch.setattr(embedders, "_export", no_export)
    monkeypatch.setattr(embedders, "_add_int8", no_export)
    again = SentenceTransformerEncoder("all-MiniLM-L6-v2", backend="onnx-int8", cache_dir=cache.parent)
    assert again.backend == "onnx-int8"


def test_a_failed_export_falls_back_to_torch_with_the_reason(tmp_path, monkeypatch, caplog):
    def failing_export(*args, **kwargs):
        raise embedders.OnnxUnavailable("the ONNX export failed (test)")

    monkeypatch.setattr(embedders, "_export", failing_export)
    with caplog.at_level(logging.WARNING, logger="index.embedders"):
        encoder = SentenceTransformerEncoder("all-MiniLM-L6-v2", backend="onnx-int8", cache_dir=tmp_path)
    assert encoder.backend == "torch"
    assert "export failed" in encoder.backend_note
    assert any("runs on torch" in record.getMessage() for record in caplog.records)
    assert encoder.encode_queries(["still answers"]).shape == (1, 384)


# A cold `verbatim ask`: run the CLI's ask in a fresh interpreter, then report what it imported.
ASK_AND_REPORT_IMPORTS = """
import json, sys
from bot.cli import app
try:
    app(["ask", "--json", "How many civilians were killed?", "--index-dir", sys.argv[1]])
except SystemExit as exit:
    assert not exit.code, exit.code
heavy = ("torch", "transformers", "sentence_transformers", "discord", "httpx", "trafilatura")
print(json.dumps({name: name in sys.modules for name in heavy}))
"""


def test_a_cold_ask_with_the_default_backend_imports_no_torch(seed_settings, tmp_path):
    # seed_settings built its index with the default backend, so the export is in MODEL_CACHE.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMBEDDING_", "DISCORD_"))}
    env.update({"MODEL_CACHE_DIR": str(MODEL_CACHE), "DATA_DIR": str(seed_settings.data_dir),
                "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2]), env.get("PYTHONPATH", "")])})
    result = subprocess.run([sys.executable, "-c", ASK_AND_REPORT_IMPORTS, str(seed_settings.index_dir)],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    answer_line, imports_line = result.stdout.strip().splitlines()
    assert json.loads(answer_line)["answered"] is True
    imported = json.loads(imports_line)
    assert [name for name, loaded in imported.items() if loaded] == []


# --- vector indexes ---------------------------------------------------------------------------


def clustered_vectors(count: int, dimension: int = 48, clusters: int = 60, seed: int = 3) -> np.ndarray:
    """Normalised vectors around a few centres, as sentence embeddings are (uniform noise is not)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dimension)).astype(np.float32)
    vectors = centres[rng.integers(0, clusters, count)] + 0.6 * rng.standard_normal((count, dimension))
    vectors = vectors.astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def corpus_vectors() -> tuple[np.ndarray, np.ndarray]:
    vectors = clustered_vectors(6000)
    queries = clustered_vectors(100, seed=4)
    return vectors, queries


def recall_at_10(index, exact, queries) -> float:
    _, truth = exact.search(queries, 10)
    _, found = index.search(queries, 10)
    return float(np.mean([len(set(t) & set(f)) / 10 for t, f in zip(truth, found, strict=True)]))


@pytest.mark.parametrize("approximate", ["hnsw", "ivf"])
def test_an_approximate_index_serves_above_the_threshold(corpus_vectors, approximate):
    vectors, queries = corpus_vectors
    policy = VectorIndexPolicy(threshold=5000, approximate=approximate, ivf_nprobe=16)
    assert describe_vector_index(build_vector_index(vectors[:4999], policy)) == "flat"
    index = build_vector_index(vectors, policy)
    assert isinstance(index, ApproximateIndex) and index.ntotal == len(vectors)
    assert describe_vector_index(index).startswith(approximate)
    exact = build_vector_index(vectors, VectorIndexPolicy(kind="flat"))
    assert recall_at_10(index, exact, queries) >= 0.95
    # Similarities come back from the stored (8-bit) vectors within a hair of the exact ones.
    rows = np.array([0, 17, 4321], dtype=np.int64)
    assert np.allclose(index.reconstruct_batch(rows), vectors[rows], atol=0.02)


@pytest.mark.parametrize("approximate", ["hnsw", "ivf"])
def test_a_search_within_one_document_is_exact(corpus_vectors, approximate):
    vectors, queries = corpus_vectors
    index = build_vector_index(vectors, VectorIndexPolicy(kind=approximate))
    exact = build_vector_index(vectors, VectorIndexPolicy(kind="flat"))
    params = faiss.SearchParameters(sel=faiss.IDSelectorRange(1200, 1212))
    scores, ids = index.search(queries[:5], 5, params=params)
    _, expected = exact.search(queries[:5], 5, params=params)
    assert ((ids >= 1200) & (ids < 1212)).all()
    assert (ids == expected).mean() >= 0.9  # 8-bit codes may swap two near-equal neighbours
    assert np.all(np.diff(scores, axis=1) <= 1e-6)


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_an_index_loads_memory_mapped_and_searches_the_same(tmp_path, corpus_vectors, kind):
    vectors, queries = corpus_vectors
    index = build_vector_index(vectors, VectorIndexPolicy(kind=kind))
    path = tmp_path / f"{kind}.faiss"
    save_vector_index(index, path)
    loaded = load_vector_index(path)
    assert describe_vector_index(loaded) == describe_vector_index(index)
    assert loaded.ntotal == len(vectors)
    assert np.array_equal(loaded.search(queries, 10)[1], index.search(queries, 10)[1])
    if kind != "ivf":  # flat and HNSW codes are mapped from the file, not copied
        assert str(path) in Path("/proc/self/maps").read_text()
    del loaded


def test_the_search_depth_is_kept_in_the_file(tmp_path, corpus_vectors):
    vectors, _ = corpus_vectors
    for kind, expected in (("hnsw", "efSearch 77"), ("ivf", "nprobe 9")):
        path = tmp_path / f"{kind}.faiss"
        save_vector_index(build_vector_index(vectors, VectorIndexPolicy(kind=kind, hnsw_ef_search=77, ivf_nprobe=9)),
                          path)
        assert expected in describe_vector_index(load_vector_index(path))


def test_policy_follows_the_settings():
    settings = Settings(_env_file=None, vector_index_threshold=10, approximate_index="ivf", ivf_nprobe=5)
    policy = VectorIndexPolicy.from_settings(settings)
    assert (policy.choose(9), policy.choose(10), policy.ivf_nprobe) == ("flat", "ivf", 5)
    assert VectorIndexPolicy(kind="flat").choose(10**9) == "flat"
