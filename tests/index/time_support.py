"""An invented dated corpus: floods in the invented town of Vellmoor, reported over days by three invented
outlets with a rising toll (12, then 27, then 41), an inquiry in April and a festival in November."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from index.settings import Settings
from index.store.build import Encoders, build_index
from tests.conftest import make_settings

VELLMOOR = Path(__file__).parents[1] / "data" / "vellmoor"
FIRST_TOLL = "At least 12 people were killed in the Vellmoor floods, the county coroner said."
SECOND_TOLL = "The death toll from the Vellmoor floods rose to 27, emergency officials said."
FINAL_TOLL = ("Officials said on 9 March that 41 people had died in the Vellmoor floods, making it the deadliest "
              "flood in the Dunmarsh valley for a century.")
DAY = dt.date.fromisoformat


def build_vellmoor(folder: Path, encoders: Encoders) -> Settings:
    settings = make_settings(folder, VELLMOOR)
    build_index(settings, encoders=encoders)
    return settings


def article_text(doc_id: str) -> str:
    return (VELLMOOR / f"{doc_id}.md").read_text(encoding="utf-8")
