"""Written answers: a language model rewords the best candidate sentences, and every sentence it writes
is checked against the ones it cites (index/answers/checks.py) before anyone sees it.

The model gets the question and the scorer's best candidates, numbered, with outlet and date, through
any OpenAI-compatible /chat/completions endpoint (Ollama, llama.cpp, vLLM, a hosted API). A sentence
that fails its check is dropped and logged; when none is left, or the endpoint times out, errs,
refuses or rate-limits, the extractive answer is given instead. Nothing here raises to the user.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

import httpx
from pydantic import SecretStr

from index.answers.checks import Evidence, WrittenSentence, numbers_in, problem_with, split_written
from index.answers.compose import Answer, Citation, ScoredCandidate, WritingReport, cite_sentence
from index.answers.features import fold
from index.answers.figures import FigureReport
from index.retrieval.question import ParsedQuestion
from index.settings import Settings

log = logging.getLogger("verbatim.llm")

GIVEN_SENTENCES = 8  # candidates the model sees: enough to paraphrase from, few enough for a small model
_LANGUAGES = {"en": "English", "ar": "Arabic", "he": "Hebrew", "ru": "Russian", "el": "Greek", "hi": "Hindi",
              "ko": "Korean", "ja": "Japanese", "zh": "Chinese", "th": "Thai"}
OnWritten = Callable[[Answer], None]


class EndpointProblem(Exception):
    """The endpoint gave no usable answer; the message says why (for the log, never for users)."""


@dataclass(frozen=True)
class Endpoint:
    base_url: str
    model: str
    api_key: SecretStr | None
    timeout_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> Endpoint:
        return cls(settings.llm_base_url.rstrip("/"), settings.llm_model, settings.llm_api_key,
                   settings.llm_timeout_seconds)


class ChatClient:
    """/chat/completions over httpx, whole or streamed (server-sent events), within one deadline."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._headers = {"Accept": "application/json"}
        if endpoint.api_key is not None:
            self._headers["Authorization"] = f"Bearer {endpoint.api_key.get_secret_value()}"

    def chunks(self, messages: list[dict[str, str]], *, stream: bool) -> Iterator[str]:
        """The reply's text, in pieces as they arrive (one piece when not streaming)."""
        # The whole answer shares one deadline, however slowly a stream trickles in. perf_counter, not
        # monotonic: a test's virtual clock may move monotonic time.
        deadline = time.perf_counter() + self.endpoint.timeout_seconds
        body = {"model": self.endpoint.model, "messages": messages, "temperature": 0, "stream": stream}
        url = f"{self.endpoint.base_url}/chat/completions"
        try:
            # A client per answer: an engine is swapped at every re-index and nothing would close a kept
            # one; a new connection costs little beside seconds of generation.
            with httpx.Client(headers=self._headers, timeout=self.endpoint.timeout_seconds,
                              follow_redirects=False) as http, http.stream("POST", url, json=body) as response:
                self._check_status(response)
                # A server that cannot stream may answer whole; that is one piece.
                if not stream or response.headers.get("content-type", "").startswith("application/json"):
                    response.read()
                    yield self._content(_json(response.text), "message")
                    return
                for line in response.iter_lines():
                    if time.perf_counter() > deadline:
                        raise EndpointProblem(f"timed out after {self.endpoint.timeout_seconds:g} s")
                    if not line.startswith("data:"):
                        continue  # SSE comments and blank separators
                    data = line[len("data:"):].strip()
                    if data == "[DONE]":
                        return
                    piece = self._content(_json(data), "delta")
                    if piece:
                        yield piece
        except httpx.TimeoutException:
            raise EndpointProblem(f"timed out after {self.endpoint.timeout_seconds:g} s") from None
        except httpx.HTTPError as error:
            raise EndpointProblem(f"could not reach the endpoint ({type(error).__name__})") from None

    @staticmethod
    def _check_status(response: httpx.Response) -> None:
        if response.status_code == 429:
            raise EndpointProblem("rate limited (HTTP 429)")
        if response.status_code >= 400:
            raise EndpointProblem(f"HTTP {response.status_code}")

    @staticmethod
    def _content(payload: object, part: str) -> str:
        try:
            choice = payload["choices"][0]  # type: ignore[index]
            message = choice.get(part) or {}
            if message.get("refusal") or choice.get("finish_reason") == "content_filter":
                raise EndpointProblem("the model refused")
            return message.get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError):
            raise EndpointProblem("a reply that is not a chat completion") from None


def _json(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:
        raise EndpointProblem("a reply that is not JSON") from None


# A figure history as the model sees it: (given sentence number, report), newest report first.
GivenReports = Sequence[tuple[int, FigureReport]]


def prompt(question: ParsedQuestion, given: list[Evidence], reports: GivenReports = ()) -> list[dict[str, str]]:
    language = _LANGUAGES.get(question.language, "the language of the question")
    numbered = "\n".join(
        f"[{n}] ({', '.join(p for p in (e.source, (e.published or '')[:10]) if p) or 'unknown outlet'}) {e.text}"
        for n, e in enumerate(given, start=1)
    )
    system = (
        "You answer questions about the news using only the numbered sentences you are given. "
        f"Answer in {language}, in two or three sentences. End every sentence with the numbers of the given "
        "sentences it relies on, in square brackets, for example [1] or [2][3]. Every number, date and name "
        "you write must appear in the sentences you cite. Add nothing the sentences do not say. "
        "Write only the answer."
    )
    user = f"Question: {question.text}\n\nSentences:\n{numbered}"
    if reports:
        # The sources changed this figure over time: the newest report must lead (checked, see `_order_problem`).
        history = "\n".join(f"- {r.figure} [{n}] ({', '.join(filter(None, [r.source, r.date]))})" for n, r in reports)
        system += (" When the sentences report a figure that changed over time, give the newest report first; "
                   "mention earlier figures only after it, as earlier reports.")
        user += f"\n\nThe figure as reported, newest first:\n{history}"
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


@dataclass(frozen=True)
class Draft:
    """What the model wrote that passed its checks so far, and what it cites (the given sentences' order)."""

    kept: tuple[WrittenSentence, ...] = ()
    dropped: int = 0

    def answer(self, extractive: Answer, given: list[ScoredCandidate], mode: str, problem: str | None,
               reports: GivenReports = ()) -> Answer:
        """The written answer: kept sentences with their citations renumbered in order of first use; the
        extractive answer's note (no source in the time asked, quotes in another language) stays, and so
        does its figure history, renumbered, when the written answer cites the newest report."""
        order: list[int] = []
        for sentence in self.kept:
            order += [n for n in sentence.cites if n not in order]
        renumber = {old: new for new, old in enumerate(order, start=1)}
        citations: list[Citation] = [cite_sentence(renumber[old], given[old - 1].candidate) for old in order]
        text = " ".join(s.marked(renumber[n] for n in s.cites) for s in self.kept)
        history = [replace(r, n=renumber[n]) for n, r in reports if n in renumber]
        if reports and reports[0][0] not in renumber:
            history = []  # without the newest report cited, no cited report is "latest"
        return replace(extractive, text=text, citations=citations, mode=mode, reports=history,
                       written=WritingReport(len(self.kept), self.dropped, problem))


def _order_problem(sentence: WrittenSentence, reports: GivenReports, kept: tuple[WrittenSentence, ...]) -> str | None:
    """A sentence may not lead with an earlier report of a figure that changed: one whose numbers include
    an earlier report's figure but not the newest is dropped unless a kept sentence already gave the newest."""
    if not reports:
        return None
    newest = str(reports[0][1].value)  # as numbers_in writes a whole number
    earlier = {str(r.value) for _, r in reports[1:]} - {newest}
    if any(newest in numbers_in(s.text) for s in kept):
        return None
    said = numbers_in(sentence.text)
    if newest in said or not said & earlier:
        return None
    return f"gives the earlier figure {sorted(said & earlier)[0]} before the newest report's {newest}"


class AnswerWriter:
    """Asks the model for a written answer and lets through only the sentences that pass their checks."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.client = ChatClient(endpoint)

    @classmethod
    def from_settings(cls, settings: Settings) -> AnswerWriter:
        return cls(Endpoint.from_settings(settings))

    def write(self, question: ParsedQuestion, scored: list[ScoredCandidate], extractive: Answer,
              on_written: OnWritten | None = None) -> Answer:
        """The written answer for `question`, or `extractive` (marked extractive-fallback) when none passes.

        With `on_written`, the reply is streamed and `on_written` gets the answer so far each time
        another sentence passes its check (in the calling thread)."""
        # The extractive answer's figure history (newest first): each report's sentence is given to the model.
        report_texts = [_text_key(extractive.citations[r.n - 1].quote) for r in extractive.reports]
        given = _given(scored, report_texts)
        number_of = {_text_key(entry.candidate.text): n for n, entry in enumerate(given, start=1)}
        reports: GivenReports = [(number_of[text], r) for text, r in zip(report_texts, extractive.reports, strict=True)
                                 if text in number_of]
        evidence = {n: Evidence(s.candidate.text, s.candidate.hit.source, s.candidate.hit.published)
                    for n, s in enumerate(given, start=1)}
        draft, problem, buffer = Draft(), None, ""

        def check(sentences: list[WrittenSentence]) -> None:
            nonlocal draft
            for sentence in sentences:
                why = problem_with(sentence, evidence) or _order_problem(sentence, reports, draft.kept)
                if why is not None:
                    log.info("dropped a written sentence (%s): %r", why, sentence.text[:300])
                    draft = replace(draft, dropped=draft.dropped + 1)
                    continue
                draft = replace(draft, kept=(*draft.kept, sentence))
                if on_written:
                    on_written(draft.answer(extractive, given, "llm", None, reports))

        started = time.perf_counter()
        try:
            messages = prompt(question, list(evidence.values()), reports)
            for piece in self.client.chunks(messages, stream=on_written is not None):
                buffer += piece
                complete, buffer = split_written(buffer, final=False)
                check(complete)
            check(split_written(buffer, final=True)[0])
        except EndpointProblem as error:
            problem = str(error)
            log.warning("the language model gave no usable answer (%s); %s", problem,
                        "keeping the sentences already checked" if draft.kept else "giving the extractive answer")
        elapsed = round((time.perf_counter() - started) * 1000, 2)
        if not draft.kept:
            if problem is None:
                problem = "no written sentence passed its check"
                log.info("no written sentence passed its check (%d dropped); giving the extractive answer",
                         draft.dropped)
            return replace(extractive, mode="extractive-fallback", written=WritingReport(0, draft.dropped, problem),
                           timings_ms={**extractive.timings_ms, "write": elapsed})
        mode = "llm" if not draft.dropped and problem is None else "llm-partial"
        answer = draft.answer(extractive, given, mode, problem, reports)
        return replace(answer, timings_ms={**extractive.timings_ms, "write": elapsed})


def _given(scored: list[ScoredCandidate], required: Sequence[str] = ()) -> list[ScoredCandidate]:
    """The likeliest candidates, each text once, and those with the `required` texts (`_text_key`: a figure
    history's reports) even when less likely."""
    given: list[ScoredCandidate] = []
    seen: set[str] = set()
    missing = set(required)
    for entry in scored:
        key = _text_key(entry.candidate.text)
        if key in seen or (len(given) >= GIVEN_SENTENCES and key not in missing):
            continue
        seen.add(key)
        given.append(entry)
        missing.discard(key)
        if len(given) >= GIVEN_SENTENCES and not missing:
            break
    return given


def _text_key(text: str) -> str:
    return " ".join(fold(text).split())
