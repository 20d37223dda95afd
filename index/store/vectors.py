"""FAISS vector indexes: how they are made from embeddings, saved and loaded.

Small corpora get exact search (a flat index). From `VectorIndexPolicy.threshold` vectors on, exact
search costs too much per question (it reads every vector), so an approximate index serves them:

- `ivf` (the default): inverted lists over 8-bit scalar-quantised vectors (`IVF<4·√n>,SQ8`), each
  question scanning `nprobe` of them. At 1M passages: built in ~3 minutes on 2 cores, recall@10
  0.97 against exact search at nprobe 48, well under 1 ms a question.
- `hnsw`: a graph over 8-bit scalar-quantised vectors (`HNSW32,SQ8`). As accurate and as fast per
  question (0.97 at efSearch 192), but ~3x slower to build, and its graph is held in memory.

Either holds a vector in a quarter of the space of a float one, so a 1M-passage index fits in memory
with room to spare. Vectors are loaded memory-mapped where FAISS allows (flat codes and HNSW codes:
`IO_FLAG_MMAP_IFC`), so opening an index costs almost nothing and pages come in as they are read.

Approximate indexes come wrapped in `ApproximateIndex`, which answers a filtered search (one
document's passages) exactly: graph and list searches find little or nothing under so narrow a filter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeAlias

import faiss
import numpy as np

VectorIndexKind = Literal["auto", "flat", "hnsw", "ivf"]


@dataclass(frozen=True)
class VectorIndexPolicy:
    """Which index serves a set of vectors, and how deep approximate ones search.

    The search depths are query-time settings: the build stores its own in the index file, and
    `load_vector_index` given a policy replaces them with the policy's, so changing them needs no rebuild.
    """

    kind: VectorIndexKind = "auto"  # auto: flat below `threshold` vectors, else `approximate`
    threshold: int = 200_000
    approximate: Literal["hnsw", "ivf"] = "ivf"
    hnsw_m: int = 32
    hnsw_ef_construction: int = 80
    hnsw_ef_search: int = 192
    ivf_nprobe: int = 48  # of about 4·√n lists

    @classmethod
    def from_settings(cls, settings) -> VectorIndexPolicy:
        return cls(
            kind=settings.vector_index,
            threshold=settings.vector_index_threshold,
            approximate=settings.approximate_index,
            hnsw_ef_search=settings.hnsw_ef_search,
            ivf_nprobe=settings.ivf_nprobe,
        )

    def choose(self, count: int) -> str:
        if self.kind != "auto":
            return self.kind
        return "flat" if count < self.threshold else self.approximate


class ApproximateIndex:
    """An approximate FAISS index that behaves like one for the engine, with exact filtered searches.

    `search(x, k, params)` with a selector in `params.sel` (the engine's "this document only") is
    answered by `filtered_search`; other attributes are the index's own.
    """

    def __init__(self, index: faiss.Index) -> None:
        self.index = index

    def __getattr__(self, name: str):
        return getattr(self.index, name)

    @property
    def ntotal(self) -> int:
        return self.index.ntotal

    @property
    def d(self) -> int:
        return self.index.d

    def search(self, x: np.ndarray, k: int, params: faiss.SearchParameters | None = None):
        selector = getattr(params, "sel", None) if params is not None else None
        if selector is None:
            return self.index.search(x, k)
        return filtered_search(self.index, x, k, selector)

    def reconstruct(self, key: int, *args):
        return self.index.reconstruct(key, *args)

    def reconstruct_batch(self, keys, *args):
        return self.index.reconstruct_batch(keys, *args)

    def reconstruct_n(self, first: int, count: int, *args):
        return self.index.reconstruct_n(first, count, *args)


# What builds and loads return: a flat index as FAISS made it, an approximate one wrapped.
VectorIndex: TypeAlias = faiss.Index | ApproximateIndex


def filtered_search(index: faiss.Index, x: np.ndarray, k: int, selector: faiss.IDSelector):
    """Exact top `k` among the rows `selector` admits: every stored code is checked, none skipped.

    Checking membership of a million rows takes a few milliseconds; the graph or the probed lists
    would instead miss most rows of a narrow filter.
    """
    queries = np.ascontiguousarray(np.atleast_2d(x), dtype=np.float32)
    if isinstance(index, faiss.IndexHNSW):
        storage = faiss.downcast_index(index.storage)
        return storage.search(queries, k, params=selecting(selector))
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        every_list = faiss.SearchParametersIVF()
        every_list.sel = selector
        every_list.nprobe = ivf.nlist
        return index.search(queries, k, params=every_list)
    return index.search(queries, k, params=selecting(selector))


def selecting(selector: faiss.IDSelector) -> faiss.SearchParameters:
    """Search parameters that admit only the rows `selector` admits."""
    # Set as an attribute: FAISS's keyword form (`SearchParameters(sel=...)`) does just this, and
    # its type stub does not know the keyword.
    params = faiss.SearchParameters()
    params.sel = selector
    return params


def build_vector_index(vectors: np.ndarray, policy: VectorIndexPolicy | None = None) -> VectorIndex:
    """An inner-product index over normalised vectors (row i is passage row i), of the kind `policy` picks."""
    policy = policy or VectorIndexPolicy()
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    count, dimension = vectors.shape
    kind = policy.choose(count)
    if kind == "flat" or count == 0:
        flat = faiss.IndexFlatIP(dimension)
        if count:
            flat.add(vectors)
        return flat
    if kind == "hnsw":
        # The stub types the second argument as a ScalarQuantizer; FAISS takes its QuantizerType.
        hnsw = faiss.IndexHNSWSQ(dimension, faiss.ScalarQuantizer.QT_8bit, policy.hnsw_m,  # type: ignore[arg-type]
                                 faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = policy.hnsw_ef_construction
        hnsw.train(_sample(vectors, 200_000))
        _add_in_blocks(hnsw, vectors)
        set_search_depth(hnsw, policy)
        return ApproximateIndex(hnsw)
    if kind == "ivf":
        nlist = ivf_lists(count)
        quantizer = faiss.IndexFlatIP(dimension)
        ivf = faiss.IndexIVFScalarQuantizer(quantizer, dimension, nlist, faiss.ScalarQuantizer.QT_8bit,
                                            faiss.METRIC_INNER_PRODUCT)
        ivf.cp.niter = 12  # k-means on a sample of at most 48 vectors a list: minutes, not hours
        ivf.cp.max_points_per_centroid = 48
        ivf.train(_sample(vectors, nlist * 48))
        _add_in_blocks(ivf, vectors)
        ivf.make_direct_map()  # so rows can be reconstructed (similarities, range searches)
        set_search_depth(ivf, policy)
        return ApproximateIndex(ivf)
    raise ValueError(f"Unknown vector index kind {kind!r}; use auto, flat, hnsw or ivf.")


def ivf_lists(count: int) -> int:
    """About 4·√n inverted lists, at least 1 and never more than there are vectors / 39."""
    return max(1, min(int(4 * math.sqrt(count)), count // 39 or 1))


def _sample(vectors: np.ndarray, size: int) -> np.ndarray:
    if len(vectors) <= size:
        return vectors
    rows = np.sort(np.random.default_rng(0).choice(len(vectors), size, replace=False))
    return vectors[rows]


def _add_in_blocks(index: faiss.Index, vectors: np.ndarray, block: int = 100_000) -> None:
    for start in range(0, len(vectors), block):
        index.add(vectors[start : start + block])


def unwrap(index: VectorIndex) -> faiss.Index:
    return index.index if isinstance(index, ApproximateIndex) else index


def describe_vector_index(wrapped: VectorIndex) -> str:
    """A short name for the manifest: which kind of index serves the vectors, and how it searches."""
    index = unwrap(wrapped)
    if isinstance(index, faiss.IndexFlat):
        return "flat"
    if isinstance(index, faiss.IndexHNSW):
        neighbours = index.hnsw.nb_neighbors(1)  # type: ignore[attr-defined]  # in FAISS, not in its stub
        return f"hnsw (HNSW{neighbours},SQ8, efSearch {index.hnsw.efSearch})"
    ivf = faiss.try_extract_index_ivf(index) if hasattr(faiss, "try_extract_index_ivf") else None
    if ivf is not None:
        return f"ivf (IVF{ivf.nlist},SQ8, nprobe {ivf.nprobe})"
    return type(index).__name__


def save_vector_index(index: VectorIndex, path: Path) -> None:
    faiss.write_index(unwrap(index), str(path))


def load_vector_index(path: Path, mmap: bool = True, policy: VectorIndexPolicy | None = None) -> VectorIndex:
    """Read an index, memory-mapping its vectors where FAISS can (flat and HNSW codes).

    With a `policy`, approximate indexes search as deep as it says; without, as deep as when built.
    """
    flags = faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY if mmap else 0
    index = faiss.read_index(str(path), flags)
    if policy is not None:
        set_search_depth(index, policy)
    return index if isinstance(index, faiss.IndexFlat) else ApproximateIndex(index)


def set_search_depth(wrapped: VectorIndex, policy: VectorIndexPolicy) -> None:
    """Apply the policy's efSearch (HNSW) or nprobe (IVF, at most its number of lists); flat: nothing."""
    index = unwrap(wrapped)
    if isinstance(index, faiss.IndexHNSW):
        index.hnsw.efSearch = policy.hnsw_ef_search
        return
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        ivf.nprobe = min(policy.ivf_nprobe, ivf.nlist)
