"""An OpenAI-compatible /chat/completions server on loopback, and an invented corpus for it to answer about.

The server plays a model: the requested model name picks a script. A script's `{key}` becomes the
citation marker of the given sentence that contains `key`, so a "faithful" reply cites the sentence it
rewords whatever order retrieval gave; the other scripts add what no sentence says, leave a citation
out, answer slowly, fail, rate-limit or refuse. Every request is recorded.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from pydantic import SecretStr

from index.settings import Settings

# Invented: no such town, river, mayor or outlet.
ARTICLES = {
    "velmora-flood": (
        "Velmora footbridge closed after the Kessel River flood", "The Harbour Ledger", "2025-04-14",
        "The Kessel River flooded the town of Velmora on 12 April, damaging the old footbridge. "
        "Mayor Ilsa Brandt said 1,200 residents were moved to the sports hall overnight. "
        "Engineers from the regional roads office found three cracked supports under the bridge. "
        "The council said the footbridge will stay closed until the summer.",
    ),
    "orrin-harvest": (
        "Orrin valley apple harvest doubles", "Valley Courier", "2025-09-02",
        "Farmers in the Orrin valley picked 4,500 tonnes of apples this season. "
        "The cooperative chair, Tomas Reyl, credited the mild spring. "
        "Prices at the Orrin market fell by a third in August.",
    ),
}
QUESTION = "How many residents of Velmora were moved after the flood?"

SCRIPTS = {
    "faithful": "Mayor Ilsa Brandt said one thousand two hundred residents were moved to the sports hall {1,200}. "
                "The Kessel River flooded Velmora on April 12 {12 April}.",
    "invented-number": "Mayor Ilsa Brandt said 1,200 residents were moved to the sports hall {1,200}. "
                       "About 300 of them were children {1,200}.",
    "invented-name": "1,200 residents were moved to the sports hall, Mayor Ilsa Brandt said {1,200}. "
                     "Governor Petra Lund ordered the move {1,200}.",
    "missing-citation": "Mayor Ilsa Brandt said 1,200 residents were moved to the sports hall {1,200}. "
                        "The Kessel River flooded Velmora on 12 April [99]. The town had never seen such a flood.",
    "all-invented": "Some 5,000 residents fled Velmora on 3 May {1,200}.",
    "refusal": "I'm sorry, but I can't help with that request.",
    "refusal-field": None,  # the refusal field of the chat completion, no content
    "slow": "Mayor Ilsa Brandt said 1,200 residents were moved {1,200}.",
    "slow-stream": "Mayor Ilsa Brandt said 1,200 residents were moved to the sports hall {1,200}. "
                   "Governor Petra Lund ordered the move {1,200}. "
                   "The Kessel River flooded Velmora on 12 April {12 April}.",
    # Over the Vellmoor corpus (tests/index/time_support.py), where the toll rose 12 → 27 → 41.
    "figures-newest-first": "Officials said on 9 March that 41 people had died in the Vellmoor floods {41 people}. "
                            "Earlier reports gave 27 {rose to 27}.",
    "figures-older-first": "At least 12 people were killed in the Vellmoor floods {At least 12}. "
                           "Officials said on 9 March that 41 people had died {41 people}.",
}
FAILURES = {"error": 500, "rate-limited": 429}
SLOW_SECONDS = 3.0  # "slow" answers after this; tests set a shorter timeout
SENTENCE_PAUSE = 1.3  # "slow-stream" pauses this long after each sentence: longer than the bot's edit interval


@dataclass
class Recorded:
    requests: list[dict] = field(default_factory=list)  # {"headers": {...}, "body": {...}}


def write_corpus(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, (title, source, published, body) in ARTICLES.items():
        front = (f'---\ntitle: "{title}"\nurl: "https://news.example.org/{name}"\nsource: "{source}"\n'
                 f'published: "{published}"\nlang: en\n---\n\n')
        (folder / f"{name}.md").write_text(front + body + "\n", encoding="utf-8")
    return folder


def llm_settings(settings: Settings, server: ThreadingHTTPServer, model: str, **overrides) -> Settings:
    host, port = server.server_address[:2]
    values = {"answer_mode": "llm", "llm_base_url": f"http://{host}:{port}/v1", "llm_model": model,
              "llm_timeout_seconds": 10.0, **overrides}
    if isinstance(values.get("llm_api_key"), str):  # model_copy does not validate: make it the secret it is
        values["llm_api_key"] = SecretStr(values["llm_api_key"])
    return settings.model_copy(update=values)


def reply_for(script: str, user_message: str) -> str:
    given = dict(re.findall(r"^\[(\d+)\] \(.*?\) (.*)$", user_message, flags=re.M))

    def marker(match: re.Match[str]) -> str:
        key = match.group(1)
        number = next((n for n, text in given.items() if key in text), "99")
        return f"[{number}]"

    return re.sub(r"\{([^}]+)\}", marker, script)


class FakeModel(BaseHTTPRequestHandler):
    recorded = Recorded()

    def do_POST(self):  # noqa: N802 (the name http.server calls)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.recorded.requests.append({"headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})
        model = body["model"]
        if self.path != "/v1/chat/completions":
            return self._send(404, {"error": "no such path"})
        if model in FAILURES:
            # A careless server echoes the request's headers: the key must still never reach a log.
            return self._send(FAILURES[model], {"error": {"message": "failed", "echo": dict(self.headers.items())}})
        if model == "slow":
            time.sleep(SLOW_SECONDS)
        if model == "refusal-field" and body.get("stream"):
            return self._events([{"choices": [{"index": 0, "delta": {"refusal": "I can't help with that."}}]}])
        if model == "refusal-field":
            message = {"role": "assistant", "content": None, "refusal": "I can't help with that."}
            return self._send(200, {"choices": [{"index": 0, "message": message, "finish_reason": "stop"}]})
        text = reply_for(SCRIPTS[model], body["messages"][-1]["content"])
        if body.get("stream"):
            return self._stream(text, pause=SENTENCE_PAUSE if model == "slow-stream" else 0.0)
        message = {"role": "assistant", "content": text}
        self._send(200, {"choices": [{"index": 0, "message": message, "finish_reason": "stop"}]})

    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (the "slow" script)

    def _stream(self, text: str, pause: float) -> None:
        sentences = re.split(r"(?<=\]\.) ", text)
        self._events(({"choices": [{"index": 0, "delta": {"content": piece}}]}
                      for number, sentence in enumerate(sentences)
                      for piece in re.findall(r".{1,9}", (" " if number else "") + sentence, flags=re.S)),
                     pause_after=lambda chunk: chunk["choices"][0]["delta"]["content"].endswith("]."), pause=pause)

    def _events(self, chunks, pause_after=lambda chunk: False, pause: float = 0.0) -> None:
        """Server-sent events, one chunk each; "thinking" for `pause` seconds after each sentence."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        try:
            for chunk in chunks:
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
                if pause and pause_after(chunk):
                    time.sleep(pause)
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args):
        pass


@contextmanager
def fake_model() -> Iterator[ThreadingHTTPServer]:
    """The fake model on a free loopback port until the block ends (its record emptied first)."""
    FakeModel.recorded = Recorded()
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeModel)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
