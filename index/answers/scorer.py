"""The learned answer scorer: P(this sentence answers the question) from a candidate's features.

A logistic regression over standardised features (index/answers/features.py), fitted by
`verbatim train-answerer` (index/answers/training.py) and shipped as a small JSON file in the package. It is
evaluated with numpy alone, so answering needs no machine-learning library at run time. The file
carries its own version, the feature names it was fitted on, and the decline threshold chosen on
the development split; a file that does not fit this code is refused with a message saying how to
retrain it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from index.answers.features import FEATURES
from index.errors import VerbatimError

SCORER_FORMAT = 1
DEFAULT_SCORER = Path(__file__).with_name("scorer.json")


class ScorerError(VerbatimError):
    pass


@dataclass(frozen=True)
class AnswerScorer:
    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coefficients: np.ndarray
    intercept: float
    threshold: float  # decline when the best sentence's probability is below this
    keep_ratio: float  # further sentences are kept when their probability is at least this share of the best
    about: dict = field(default_factory=dict)  # how it was trained and its development-split figures

    def probabilities(self, rows: np.ndarray) -> np.ndarray:
        if len(rows) == 0:
            return np.zeros(0, dtype=np.float64)
        z = ((np.asarray(rows, dtype=np.float64) - self.mean) / self.scale) @ self.coefficients + self.intercept
        return 1.0 / (1.0 + np.exp(-z))

    def to_json(self) -> dict:
        return {
            "format": SCORER_FORMAT,
            "features": list(self.features),
            "mean": [round(float(v), 8) for v in self.mean],
            "scale": [round(float(v), 8) for v in self.scale],
            "coefficients": [round(float(v), 8) for v in self.coefficients],
            "intercept": round(float(self.intercept), 8),
            "threshold": round(float(self.threshold), 4),
            "keep_ratio": round(float(self.keep_ratio), 4),
            "about": self.about,
        }

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path | None = None) -> AnswerScorer:
        path = path or DEFAULT_SCORER
        retrain = "Retrain it with `verbatim train-answerer` or set ANSWER_SCORER to a file this version wrote."
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ScorerError(f"The answer scorer {path} could not be read ({error}). {retrain}") from error
        if not isinstance(data, dict) or data.get("format") != SCORER_FORMAT:
            found = data.get("format") if isinstance(data, dict) else None
            raise ScorerError(f"The answer scorer {path} has format {found!r}; this version reads "
                              f"{SCORER_FORMAT}. {retrain}")
        if tuple(data.get("features", ())) != FEATURES:
            raise ScorerError(f"The answer scorer {path} was fitted on other features than this version "
                              f"computes. {retrain}")
        try:
            scorer = cls(
                features=FEATURES,
                mean=np.asarray(data["mean"], dtype=np.float64),
                scale=np.asarray(data["scale"], dtype=np.float64),
                coefficients=np.asarray(data["coefficients"], dtype=np.float64),
                intercept=float(data["intercept"]),
                threshold=float(data["threshold"]),
                keep_ratio=float(data["keep_ratio"]),
                about=dict(data.get("about") or {}),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ScorerError(f"The answer scorer {path} is incomplete ({error}). {retrain}") from error
        if not (scorer.mean.shape == scorer.scale.shape == scorer.coefficients.shape == (len(FEATURES),)):
            raise ScorerError(f"The answer scorer {path} has the wrong number of weights. {retrain}")
        return scorer
