"""Health and metrics for operators: `/healthz` (is this process ready?) and `/metrics` (Prometheus).

A `Health` belongs to one running bot: its own CollectorRegistry (never prometheus-client's global
one, so two bots in one process, as in tests, count apart) and the state `/healthz` reports. Features
record what happens with one call each (`asked`, `answered`, `failed`, `reindexed`, `feed_polled`),
from the event loop or a worker thread alike (prometheus-client's metrics are thread-safe).
`serve_health` publishes both on HEALTH_HOST:HEALTH_PORT from a thread of its own, so they answer
while the index is still loading and however busy the event loop is.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Literal, get_args

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from bot.discord.errors import StartupError, user_message

if TYPE_CHECKING:
    import discord

    from index.engine import LiveEngine
    from index.settings import Settings

log = logging.getLogger("verbatim.health")

# Answers take ~10-40 ms with the models loaded (docs/speed.md); the upper buckets catch a cold
# cache, a busy machine or a slow reranker.
ANSWER_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

QuestionVia = Literal["slash", "mention", "forum", "check", "timeline"]
ErrorKind = Literal["user", "internal"]


class Metrics:
    """The counters `/metrics` publishes, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.questions = Counter("verbatim_questions", "Questions received.", ["via"], registry=r)
        self.answers = Counter("verbatim_answers", "Questions answered with quotes.", registry=r)
        self.declines = Counter("verbatim_declines", "Questions the sources do not answer (closest quotes shown).",
                                registry=r)
        self.answer_seconds = Histogram("verbatim_answer_seconds", "Time the engine took to answer (retrieval and "
                                        "answer).", buckets=ANSWER_SECONDS_BUCKETS, registry=r)
        self.errors = Counter("verbatim_errors", "Commands and messages that failed: the user's to fix, or internal "
                              "(a bug, logged with its traceback).", ["kind"], registry=r)
        self.reindexes = Counter("verbatim_reindexes", "Index changes made by this process.", ["trigger"], registry=r)
        self.feed_polls = Counter("verbatim_feed_polls", "Feed polls made by this process.", registry=r)
        self.ready = Gauge("verbatim_ready", "1 when the index is loaded and Discord is connected.", registry=r)
        self.documents = Gauge("verbatim_index_documents", "Articles in the index being served.", registry=r)
        self.passages = Gauge("verbatim_index_passages", "Passages in the index being served.", registry=r)
        for via in get_args(QuestionVia):  # so each series exists (at 0) before the first question
            self.questions.labels(via)
        for kind in ("user", "internal"):
            self.errors.labels(kind)

    def text(self) -> bytes:
        return generate_latest(self.registry)


@dataclass
class Health:
    """What this process knows about itself; the HTTP server thread reads it, features write it.

    `live` is set once the index is loaded and `client` once the bot exists, so a process that is
    still loading reports `ready: false` instead of not answering.
    """

    metrics: Metrics = field(default_factory=Metrics)
    live: LiveEngine | None = None
    client: discord.Client | None = None
    last_feed_poll: dt.datetime | None = None

    # ------------------------------------------------------------ what features record

    def asked(self, via: QuestionVia) -> None:
        self.metrics.questions.labels(via).inc()

    def answered(self, answer: Any) -> None:
        """An engine answer (index.answers.compose.Answer): answered or declined, and how long it took."""
        (self.metrics.answers if answer.answered else self.metrics.declines).inc()
        self.metrics.answer_seconds.observe(answer.timings_ms.get("total", 0.0) / 1000)

    def failed(self, error: BaseException) -> None:
        """A command or message that failed: the user's to fix (an unknown source…), or a bug."""
        kind: ErrorKind = "user" if user_message(error) is not None else "internal"
        self.metrics.errors.labels(kind).inc()

    def reindexed(self, trigger: str) -> None:
        """The served index changed: "reindex", "ingest", "feed"…"""
        self.metrics.reindexes.labels(trigger).inc()

    def feed_polled(self, at: dt.datetime | None = None) -> None:
        self.last_feed_poll = at or dt.datetime.now(dt.UTC)
        self.metrics.feed_polls.inc()

    # ------------------------------------------------------------ what /healthz reports

    @property
    def ready(self) -> bool:
        client = self.client
        connected = client is not None and client.is_ready() and not client.is_closed()
        return self.live is not None and connected

    def report(self) -> dict[str, Any]:
        """The /healthz body; also refreshes the gauges, so /metrics agrees with it."""
        ready = self.ready
        body: dict[str, Any] = {"ready": ready, "index_version": None, "documents": None, "passages": None}
        if self.live is not None:
            info = self.live.current.info()
            body.update(index_version=info.index_version, documents=info.documents, passages=info.passages)
            self.metrics.documents.set(info.documents)
            self.metrics.passages.set(info.passages)
        body["last_feed_poll"] = self.last_feed_poll.isoformat() if self.last_feed_poll else None
        if self.client is not None and self.client.shard_count is not None:
            body["shards"] = {"count": self.client.shard_count, "ids": list(getattr(self.client, "shard_ids", None)
                                                                          or range(self.client.shard_count))}
        self.metrics.ready.set(1 if ready else 0)
        return body


class _Handler(BaseHTTPRequestHandler):
    server: _HealthHTTPServer

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        health = self.server.health
        path = self.path.split("?", 1)[0]
        try:
            if path == "/healthz":
                report = health.report()
                # 503 while loading or disconnected: load balancers and Docker read the status alone.
                self._send(200 if report["ready"] else 503, "application/json", json.dumps(report).encode())
            elif path == "/metrics":
                health.report()  # refresh the gauges
                self._send(200, CONTENT_TYPE_LATEST, health.metrics.text())
            else:
                self._send(404, "text/plain; charset=utf-8", b"Not found: try /healthz or /metrics\n")
        except Exception:  # a bug here must not end the server thread
            log.exception("health endpoint %s failed", path)
            self._send(500, "text/plain; charset=utf-8", b"Internal error; see the bot's log\n")

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        log.debug("%s %s", self.address_string(), format % args)  # scrapes every few seconds: not INFO


class _HealthHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], health: Health) -> None:
        self.health = health
        super().__init__(address, _Handler)


@dataclass(frozen=True)
class HealthServer:
    """A running /healthz and /metrics server; `port` is the one bound (HEALTH_PORT=0 picks a free one)."""

    health: Health
    host: str
    port: int


@contextmanager
def serve_health(settings: Settings, health: Health) -> Iterator[HealthServer | None]:
    """Serve `health` on HEALTH_HOST:HEALTH_PORT until the block ends; nothing when HEALTH_PORT is not set."""
    if settings.health_port is None:
        yield None
        return
    address = (settings.health_host, settings.health_port)
    try:
        server = _HealthHTTPServer(address, health)
    except OSError as error:
        raise StartupError(
            f"Cannot serve /healthz and /metrics on {settings.health_host}:{settings.health_port} ({error.strerror}). "
            "Choose a free HEALTH_PORT (or a HEALTH_HOST this machine has), or leave HEALTH_PORT empty to turn it off."
        ) from None
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="verbatim-health", daemon=True)
    thread.start()
    log.info("health and metrics on http://%s:%d/healthz and /metrics", settings.health_host, port)
    try:
        yield HealthServer(health, settings.health_host, port)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
