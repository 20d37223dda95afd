"""The main embedder: the torch-free ONNX path against sentence-transformers on torch, and thread safety."""

from __future__ import annotations

import random
import threading

import numpy as np
import pytest

from index.embedders import SentenceTransformerEncoder
from tests.conftest import MODEL_CACHE, SEED_ARTICLE

ARABIC = [
    "قالت وزارة الصحة إن 14 شخصا قتلوا وأصيب 37 آخرون في الانفجار يوم الثلاثاء.",
    "كم عدد المدنيين الذين قتلوا في الهجوم على السوق؟",
    "تعهدت الحكومة السورية بمحاسبة المسؤولين عن أعمال العنف في الساحل.",
]
ODD = ["", " ", "\t\n", "?", "...", "a", "ok", "Ünïcödé façade naïve café", "数据 中文 测试", "😀 🎉 emoji only",
       "e=mc² ∑ √2 ≈ 1.414", "A" * 600, "x" * 5, "don't won't can't", "HTTPS://EXAMPLE.COM/a?b=c&d=e",
       "  leading and trailing spaces  ", "zero\u200bwidth\u200djoiner", "Ελληνικά και русский текст"]


def varied_texts(count: int = 200, seed: int = 11) -> list[str]:
    """Sentences of the seed article, Arabic, odd strings, and texts longer than the model's window."""
    rng = random.Random(seed)  # noqa: S311 - a repeatable sample of texts, not a secret
    sentences = [s.strip() for s in SEED_ARTICLE.read_text(encoding="utf-8").replace("\n", " ").split(". ")
                 if s.strip()]
    pool = sentences + ARABIC
    texts = list(ODD) + ARABIC
    while len(texts) < count:
        kind = rng.random()
        if kind < 0.5:
            texts.append(rng.choice(pool))
        elif kind < 0.85:
            texts.append(" ".join(rng.choice(pool) for _ in range(rng.randint(2, 6))))
        else:  # past the 256-token window, so truncation decides the vector
            texts.append(" ".join(rng.choice(pool) for _ in range(rng.randint(12, 20))))
    return texts


@pytest.fixture(scope="module")
def torch_encoder() -> SentenceTransformerEncoder:
    return SentenceTransformerEncoder("all-MiniLM-L6-v2", backend="torch")


@pytest.fixture(scope="module")
def onnx_encoder() -> SentenceTransformerEncoder:
    return SentenceTransformerEncoder("all-MiniLM-L6-v2", backend="onnx", cache_dir=MODEL_CACHE)


def test_the_torch_free_path_gives_sentence_transformers_vectors(torch_encoder, onnx_encoder):
    assert onnx_encoder.backend == "onnx", onnx_encoder.backend_note
    assert onnx_encoder._onnx is not None  # served by tokenizers + ONNX Runtime + numpy
    texts = varied_texts()
    assert max(onnx_encoder.count_tokens(texts)) > onnx_encoder.max_tokens
    expected = torch_encoder.encode_queries(texts)  # sentence-transformers encodes both kinds alike
    for served in (onnx_encoder.encode_queries(texts), onnx_encoder.encode_passages(texts)):
        assert served.shape == expected.shape == (len(texts), 384) and served.dtype == np.float32
        cosine = np.sum(served * expected, axis=1)
        assert cosine.min() >= 0.9999, [texts[i][:60] for i in np.argsort(cosine)[:3]]
        assert np.allclose(np.linalg.norm(served, axis=1), 1.0, atol=1e-5)
    for attribute in ("dimension", "max_tokens", "name"):
        assert getattr(onnx_encoder, attribute) == getattr(torch_encoder, attribute)
    assert onnx_encoder.encode_queries([]).shape == (0, 384)


def test_token_counts_are_the_transformers_tokenizer_s(torch_encoder, onnx_encoder):
    # Token counts decide passage boundaries: the torch-free path must count exactly as before.
    texts = varied_texts(seed=12)
    reference = torch_encoder._model.tokenizer(texts, add_special_tokens=False, truncation=False)["input_ids"]
    expected = [len(ids) for ids in reference]
    assert onnx_encoder.count_tokens(texts) == expected
    assert torch_encoder.count_tokens(texts) == expected
    assert onnx_encoder.count_tokens([]) == []


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_counting_tokens_while_encoding_changes_no_vector(backend, torch_encoder, onnx_encoder):
    """A re-index counts tokens (no truncation) with the encoder that answers questions (truncation)."""
    encoder = onnx_encoder if backend == "onnx" else torch_encoder
    sentences = varied_texts(60, seed=13)[21:]
    # 300-700 tokens: past the 256-token window, some past the network's 512 positions.
    long_queries = [" ".join(sentences[i:] + sentences[:i])[: 1500 + 400 * i] for i in range(6)]
    long_passages = [" ".join(sentences) * 2, " ".join(reversed(sentences)) * 3]
    expected_vectors = encoder.encode_queries(long_queries)
    expected_counts = encoder.count_tokens(long_passages)
    assert min(expected_counts) > 2 * encoder.max_tokens
    rounds = 8 if backend == "onnx" else 3
    problems: list[str] = []
    done = threading.Event()

    def count() -> None:
        try:
            while not done.is_set():
                counts = encoder.count_tokens(long_passages)
                if counts != expected_counts:
                    problems.append(f"counted {counts}, not {expected_counts}")
        except Exception as error:  # any failure in the thread is a finding, reported below
            problems.append(f"count_tokens raised {error!r}")

    counter = threading.Thread(target=count)
    counter.start()
    try:
        for _ in range(rounds):
            for i, query in enumerate(long_queries):
                try:
                    vector = encoder.encode_queries([query])[0]
                except Exception as error:
                    problems.append(f"encode_queries raised {error!r}")
                    continue
                if float(vector @ expected_vectors[i]) < 0.99999:
                    problems.append(f"query {i} encoded to cosine {float(vector @ expected_vectors[i]):.4f}")
    finally:
        done.set()
        counter.join()
    assert problems == []
