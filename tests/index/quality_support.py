"""Shared by the quality tests: small real indexes built in temporary folders."""

from __future__ import annotations

import json
from pathlib import Path

from index.engine import Engine
from index.settings import Settings
from index.store.build import Encoders, build_index

DATA = Path(__file__).resolve().parents[1] / "data"
SEED_ARTICLE = DATA / "syria-vows-accountability.md"
SEED_DEV = DATA / "seed-dev-queries.jsonl"
# Ours. seed-heldout and seed-train train the answer scorer (`verbatim train-answerer`); seed-heldout2 and
# seed-heldout3 were written apart from both and are never fitted on: quality figures come from them.
SEED_HELDOUT = DATA / "seed-heldout2-queries.jsonl"
SEED_HELDOUT3 = DATA / "seed-heldout3-queries.jsonl"


def settings_for(index_dir: Path, **overrides) -> Settings:
    """Default settings (not this machine's .env) with the index in `index_dir`."""
    return Settings(_env_file=None, index_dir=index_dir, **overrides)


def build_engine(corpus: Path, index_dir: Path, encoders: Encoders, **overrides) -> Engine:
    settings = settings_for(index_dir, **overrides)
    build_index(settings, [corpus], encoders=encoders)
    return Engine.load(settings, encoders=encoders)


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path
