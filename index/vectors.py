"""FAISS vector indexes: how they are made from embeddings, saved and loaded."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np


def build_vector_index(vectors: np.ndarray) -> faiss.Index:
    """An exact inner-product index over normalised vectors (row i is passage row i)."""
    index = faiss.IndexFlatIP(vectors.shape[1])
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def describe_vector_index(index: faiss.Index) -> str:
    """A short name for the manifest: which kind of index serves the vectors."""
    return "flat" if isinstance(index, faiss.IndexFlat) else type(index).__name__


def save_vector_index(index: faiss.Index, path: Path) -> None:
    faiss.write_index(index, str(path))


def load_vector_index(path: Path) -> faiss.Index:
    return faiss.read_index(str(path))
