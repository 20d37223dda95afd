"""Approximate index kinds at one size: build time, recall@10 against flat and latency, by search depth.

    .venv/bin/python -m benchmarks.index_kinds [--size 1M] [--kinds ivf,hnsw]

Dense vectors only (the synthetic passages of benchmarks/common.py; SciFact claims as questions),
one question at a time on one thread, as the engine searches. This is the sweep behind the
defaults (IVF, nprobe 48; HNSW efSearch 192). The built indexes are kept in var/bench/ and reused
by benchmarks.scale for the same size.
"""

from __future__ import annotations

import argparse
import time

import faiss
import numpy as np

from benchmarks.common import WORK, log, machine, percentile, synthetic_passages, table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1M")
    parser.add_argument("--kinds", default="ivf,hnsw")
    args = parser.parse_args(argv)

    from benchmarks.scale import label, parse_size
    from index.store.vectors import VectorIndexPolicy, build_vector_index, save_vector_index

    print(f"Machine: {machine()}")
    size = parse_size(args.size)
    banks = sorted(WORK.glob("sentences-*.npz"))
    if not banks:
        raise SystemExit("No sentence bank yet: run benchmarks.scale once (it makes var/bench/sentences-*.npz).")
    data = np.load(banks[0])
    queries = np.ascontiguousarray(data["queries"], dtype=np.float32)
    _, dense, _ = synthetic_passages({"dense": data["dense"], "multilingual": data["multilingual"][:, :8]}, size)
    flat = faiss.IndexFlatIP(dense.shape[1])
    flat.add(dense)
    faiss.omp_set_num_threads(2)
    _, truth = flat.search(queries, 10)

    def measure(index, name: str, depth: int) -> list:
        faiss.omp_set_num_threads(1)
        latency = []
        for row in range(len(queries)):
            started = time.perf_counter()
            index.search(queries[row : row + 1], 10)
            latency.append((time.perf_counter() - started) * 1000)
        _, found = index.search(queries, 10)
        faiss.omp_set_num_threads(2)
        recall = float(np.mean([len(set(t) & set(f)) / 10 for t, f in zip(truth, found, strict=True)]))
        return [label(size), name, depth, recall, percentile(latency, 0.5), percentile(latency, 0.95)]

    rows = [measure(flat, "flat", 0)]
    build_seconds = {}
    for kind in args.kinds.split(","):
        log(f"building {kind} over {size:,} vectors")
        started = time.perf_counter()
        index = build_vector_index(dense, VectorIndexPolicy(kind=kind))
        build_seconds[kind] = time.perf_counter() - started
        save_vector_index(index, WORK / f"kinds-{label(size)}-{kind}.faiss")
        inner = index.index
        depths = [16, 32, 48, 64, 96, 128] if kind == "ivf" else [32, 64, 96, 128, 192, 256]
        for depth in depths:
            if kind == "ivf":
                faiss.extract_index_ivf(inner).nprobe = depth
            else:
                inner.hnsw.efSearch = depth
            rows.append(measure(index, kind, depth))
        del index
    print(f"\nDense search over {label(size)} synthetic passages, {len(queries)} SciFact claims, one thread")
    print("Build seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in build_seconds.items()))
    print(table(["passages", "index", "nprobe / efSearch", "recall@10", "p50 ms", "p95 ms"], rows))


if __name__ == "__main__":
    main()
