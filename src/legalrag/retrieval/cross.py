"""A cross-encoder: reads the question and each of the best articles together and reorders
the top of the ranking (issue 13).

The ranking before it (BM25, dense, the linear reranker) compares a question and an article
through separate vectors and scores; this model reads both in one pass, the way a person
checks whether an article answers a question. It is m3e-small (the embedding model the
project installs) cut to its first layers, with a linear head on [CLS], trained on the STARD
tune questions by ``bench/train_cross_oof.py`` and shipped in ``data/models/`` (setting
``cross_encoder``). Only the weights that training changed are in the file: the word
embeddings are read from the installed m3e-small, so the file stays a few megabytes.

Over the best ``depth`` hits its score is added to the reranker's, ``reranker score +
score_weight * cross-encoder score``, when the model file sets a score_weight and the hits
come from the reranker; otherwise (a model file written before, or plain RRF over the base
encoder) the orders are fused by reciprocal ranks, ``1/(C + rank) + weight/(C +
cross-encoder rank)``. Hits below them keep their places. The
retriever applies it before cross-references are followed, and not to a question that
names an article (exact lookup).

It runs on ONNX Runtime by default (setting ``cross_encoder_backend``): the torch model is
exported once per model file to an fp32 ONNX file cached under ``cache_dir/onnx`` by the
file's content, and every load checks the ONNX scores against torch's on sample pairs, so
a damaged or stale cache file is re-exported and a disagreeing runtime falls back to torch.
On 2 cores it takes about half the time of torch (bench/cross_onnx.py).

A missing, unreadable or foreign file is a warning and the ranking as without it, never a
failed search.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from legalrag.config import Settings
from legalrag.records import Article
from legalrag.vocab import bigrams

log = logging.getLogger(__name__)
_REPO = Path(__file__).resolve().parents[3]

FORMAT = 1
FROZEN = "embeddings.word_embeddings.weight"  # the base model's, not in the file
C = 10.0  # the reciprocal-rank constant of the fusion (bench/train_cross.py)
BACKENDS = ("onnx", "torch")
AGREE = 1e-3  # the largest score difference allowed between ONNX Runtime and torch
# Pairs scored both ways at every ONNX load: short and long, one cut at max_len.
_CHECK_PAIRS = [
    ("公司拖欠工资三个月，我可以辞职并要求经济补偿吗？",
     "《劳动合同法》第三十八条\n用人单位有下列情形之一的，劳动者可以解除劳动合同：（一）未按照劳动"
     "合同约定提供劳动保护或者劳动条件的；（二）未及时足额支付劳动报酬的；"),
    ("离婚", "《民法典》第一千零七十九条\n夫妻一方要求离婚的，可以由有关组织进行调解或者直接向"
     "人民法院提起离婚诉讼。"),
    ("醉驾怎么处罚", "《刑法》第一百三十三条之一\n" + "在道路上驾驶机动车，有下列情形之一的，"
     "处拘役，并处罚金：" * 12),
]


@dataclass(frozen=True)
class CrossConfig:
    """What the file says about the model and how its scores are used."""

    base: str  # the embedding model it was cut from
    layers: int
    max_len: int  # tokens of question + article read per pair
    depth: int  # hits reordered
    weight: float  # its reciprocal ranks' weight beside the ranking's
    passages: bool = False  # a long article read by its sentences nearest the question
    headings: bool = False  # the titles of the article's part and chapter after its label
    # > 0: hits with reranker scores are ordered by score + score_weight * its score instead
    # of by ranks (a file written before this field reads as 0: ranks only)
    score_weight: float = 0.0


# 第一章 / 第二分编 / 第三节 before a title
_NUMBERED_RE = re.compile(r"^第[一二三四五六七八九十百零〇0-9]+[编章节部分]+\s*")


def label(article: Article, headings: bool) -> str:
    """The first line the cross-encoder reads: the citation, and with ``headings`` the
    titles of the article's outermost and innermost parts, numbers dropped:
    《劳动合同法》第三十八条（劳动合同的解除和终止）, 《民法典》第一千一百六十八条（侵权责任编
    一般规定）."""
    titles = [_NUMBERED_RE.sub("", t).strip() for t in article.path]
    titles = [t for t in dict.fromkeys(titles[:1] + titles[-1:]) if t]
    if not headings or not titles:
        return article.citation
    return f"{article.citation}（{' '.join(titles)}）"


# A sentence or clause of an article, with the mark that ends it.
_UNIT_RE = re.compile(r"[^。；：\n]*(?:[。；：\n]|$)")


def passage(query: str, text: str, budget: int) -> str:
    """An article's text as the cross-encoder reads it: whole when it fits in ``budget``
    characters, else its first sentence and then the sentences sharing most of the
    question's character bigrams, as many as fit, in the article's order. (A CJK
    character is one token of the model's vocabulary, so characters stand for tokens.)

    >>> passage("试用期多长", "劳动合同期限三个月以上的，可以约定试用期。试用期最长不得超过六个月。"
    ...         "违反本条规定的，由劳动行政部门责令改正。", 40)
    '劳动合同期限三个月以上的，可以约定试用期。试用期最长不得超过六个月。'
    """
    if len(text) <= budget:
        return text
    units = [u for u in _UNIT_RE.findall(text) if u.strip()]
    asked = bigrams(query)
    shared = [len(asked & bigrams(u)) for u in units]
    order = [0, *sorted(range(1, len(units)), key=lambda i: (-shared[i], i))]
    keep: list[int] = []
    used = 0
    for i in order:
        if used + len(units[i]) <= budget or not keep:
            keep.append(i)
            used += len(units[i])
    return "".join(units[i] for i in sorted(keep))


def locate(setting: str) -> Path:
    """The file a cross_encoder setting names: as given, or, for a relative path that is
    not there, relative to the repository (a command run from another folder)."""
    path = Path(setting)
    if not path.is_absolute() and not path.exists() and (_REPO / path).exists():
        return _REPO / path
    return path


def pair_texts(tokenizer, config: CrossConfig, query: str,
               articles: Sequence[Article]) -> list[str]:
    """What a cross-encoder of ``config`` reads beside the question for each article: its
    label, a line break and its text, or (config.passages) the passage of the text that
    fits the model's length with the question and the label."""
    out = []
    asked = len(tokenizer.tokenize(query)) + 3  # [CLS] and two [SEP]
    for article in articles:
        first = label(article, config.headings)
        text = article.text
        if config.passages:
            budget = config.max_len - asked - len(tokenizer.tokenize(first))
            text = passage(query, text, max(budget, 16))
        out.append(first + "\n" + text)
    return out


def write_cross(path: Path, state: Mapping[str, np.ndarray], config: CrossConfig) -> None:
    """Write a trained model's weights: matrices as int8 with a float32 scale per row,
    everything else as float32. ``state`` holds the encoder's weights (BertModel names,
    word embeddings left out) and the head's as ``head.weight`` / ``head.bias``."""
    arrays: dict[str, np.ndarray] = {}
    for name, value in state.items():
        if name == FROZEN:
            continue
        value = np.asarray(value, dtype=np.float32)
        if value.ndim == 2 and "embeddings" not in name:
            scale = np.abs(value).max(axis=1, keepdims=True) / 127.0
            scale[scale == 0] = 1.0
            arrays["q8:" + name] = np.round(value / scale).astype(np.int8)
            arrays["scale:" + name] = scale.astype(np.float32)
        else:
            arrays["f32:" + name] = value
    meta = {"format": FORMAT, **config.__dict__}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, meta=np.array(json.dumps(meta)), **arrays)
    tmp.replace(path)


def read_cross(path: Path) -> tuple[CrossConfig, dict[str, np.ndarray]]:
    """The config and float32 weights of a file written by write_cross; raises ValueError
    (naming the problem) for anything else."""
    try:
        with np.load(path, allow_pickle=False) as f:
            meta = json.loads(str(f["meta"]))
            arrays = {name: f[name] for name in f.files if name != "meta"}
    except Exception as e:  # noqa: BLE001 - any unreadable file is reported the same way
        raise ValueError(f"cannot be read ({type(e).__name__}: {e})") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError("not a file of bench/train_cross_oof.py --ship")
    config = CrossConfig(str(meta["base"]), int(meta["layers"]), int(meta["max_len"]),
                         int(meta["depth"]), float(meta["weight"]),
                         bool(meta.get("passages", False)), bool(meta.get("headings", False)),
                         float(meta.get("score_weight", 0.0)))
    state: dict[str, np.ndarray] = {}
    for key, value in arrays.items():
        kind, _, name = key.partition(":")
        if kind == "f32":
            state[name] = value.astype(np.float32)
        elif kind == "q8":
            state[name] = value.astype(np.float32) * arrays["scale:" + name]
        elif kind != "scale":
            raise ValueError(f"unknown entry {key!r}")
    if "head.weight" not in state or not all(np.isfinite(v).all() for v in state.values()):
        raise ValueError("no head, or weights that are not finite")
    return config, state


def content_key(config: CrossConfig, state: Mapping[str, np.ndarray], base: str) -> str:
    """A hash of everything a model's scores depend on: its config, its weights and its
    base model's fingerprint (the word embeddings and tokenizer come from there)."""
    h = hashlib.sha256(json.dumps(config.__dict__, sort_keys=True).encode())
    h.update(base.encode())
    for name in sorted(state):
        value = np.ascontiguousarray(state[name], dtype=np.float32)
        h.update(f"{name}{value.shape}".encode())
        h.update(value.tobytes())
    return h.hexdigest()[:20]


class CrossEncoder:
    """A loaded cross-encoder (CPU; torch, or ONNX Runtime checked against torch).
    Thread-safe: one pass at a time."""

    def __init__(self, config: CrossConfig, state: Mapping[str, np.ndarray],
                 base_dir: Path | None = None, backend: str = "torch",
                 cache_dir: Path | None = None) -> None:
        """The model of ``state`` over its base model's tokenizer and word embeddings
        (base_dir: that model's folder; by default the installed ``config.base``), run by
        torch or (backend "onnx") by ONNX Runtime from an export cached in
        ``cache_dir/onnx``, checked against torch here; when the check fails it runs on
        torch, with a warning."""
        import torch
        from transformers import AutoTokenizer, BertModel

        from legalrag.index.embed import embedding_model_dir, model_fingerprint, quiet_loading

        if backend not in BACKENDS:
            raise ValueError(f"cross_encoder_backend {backend!r} is not one of "
                             + ", ".join(BACKENDS))
        base = base_dir or embedding_model_dir(config.base)
        self.config = config
        self.torch = torch
        quiet_loading()
        self.tokenizer = AutoTokenizer.from_pretrained(str(base))
        bert = BertModel.from_pretrained(str(base))
        bert.pooler = None  # unused; dropped after loading, which then reports nothing
        bert.encoder.layer = bert.encoder.layer[:config.layers]
        bert.config.num_hidden_layers = config.layers
        own = {k: v for k, v in state.items() if not k.startswith("head.")}
        expected = set(bert.state_dict()) - {FROZEN}
        if set(own) != expected:
            odd = sorted(set(own) ^ expected)[:3]
            raise ValueError(f"weights for another model than {config.base} cut to "
                             f"{config.layers} layers (e.g. {odd})")
        bert.load_state_dict({k: torch.from_numpy(v) for k, v in own.items()}, strict=False)
        bert.eval()
        self.bert = bert
        self.head_w = torch.from_numpy(state["head.weight"]).reshape(-1)
        self.head_b = float(np.asarray(state["head.bias"]).reshape(-1)[0])
        self._lock = threading.Lock()
        self.session = None  # an onnxruntime session when it runs there
        self.backend = "torch"
        if backend == "onnx":
            key = content_key(config, state, model_fingerprint(base))
            self.session = self._onnx_session(Path(cache_dir or Settings().cache_dir) / "onnx"
                                              / f"cross-{key}.onnx")
            self.backend = "torch" if self.session is None else "onnx"

    def _batch(self, query: str, texts: Sequence[str], tensors: str) -> dict:
        return dict(self.tokenizer([query] * len(texts), list(texts),
                                   truncation="longest_first", max_length=self.config.max_len,
                                   padding=True, return_tensors=tensors))

    def _torch_scores(self, query: str, texts: Sequence[str]) -> np.ndarray:
        batch = self._batch(query, texts, "pt")
        with self.torch.inference_mode():
            cls = self.bert(**batch).last_hidden_state[:, 0]
            return (cls @ self.head_w + self.head_b).numpy()

    def export_onnx(self, path: Path) -> None:
        """Write the model (encoder and head, one score per pair) as fp32 ONNX to ``path``,
        atomically: a concurrent or interrupted export never leaves a partial file."""
        torch = self.torch
        bert, head_w, head_b = self.bert, self.head_w, self.head_b

        class Scorer(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.bert = bert

            def forward(self, ids, mask, types):
                cls = self.bert(input_ids=ids, attention_mask=mask,
                                token_type_ids=types).last_hidden_state[:, 0]
                return cls @ head_w + head_b

        example = self._batch(*_CHECK_PAIRS[0], "pt")
        names = ["input_ids", "attention_mask", "token_type_ids"]
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.tmp{os.getpid()}-{threading.get_ident()}")
        try:
            # The tracer warns about Python conditions on shapes; the load check below
            # scores padded batches of several lengths, which is what those would break.
            with torch.inference_mode(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(Scorer().eval(), tuple(example[n] for n in names), str(tmp),
                                  input_names=names, output_names=["score"], opset_version=17,
                                  dynamo=False,
                                  dynamic_axes={n: {0: "pairs", 1: "tokens"} for n in names})
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def _onnx_session(self, path: Path):
        """An onnxruntime session of the export at ``path`` (made now when it is missing,
        and once more when the cached file fails) whose scores on the check pairs agree
        with torch's; None, with a warning, when none does."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.torch.get_num_threads()
        options.inter_op_num_threads = 1
        problem = ""
        for attempt in range(2):
            if attempt or not path.is_file():
                log.info("exporting the cross-encoder to ONNX in %s (once per model file)",
                         path)
                try:
                    path.unlink(missing_ok=True)
                    self.export_onnx(path)
                except Exception as e:  # noqa: BLE001 - torch stays the way to score
                    problem = f"the export failed ({type(e).__name__}: {e})"
                    break
            try:
                session = ort.InferenceSession(str(path), options,
                                               providers=["CPUExecutionProvider"])
                problem = self._disagreement(session)
            except Exception as e:  # noqa: BLE001 - a damaged file is exported again
                problem = f"{path} cannot be run ({type(e).__name__}: {e})"
            if not problem:
                return session
            if attempt == 0:
                log.warning("cross-encoder ONNX file: %s; exporting it again", problem)
        log.warning("the cross-encoder runs on torch (slower): %s; to stop this warning "
                    "set cross_encoder_backend = \"torch\"", problem)
        return None

    def _disagreement(self, session) -> str:
        """Why ``session`` does not score the check pairs as torch does ("" when it does)."""
        for query, text in _CHECK_PAIRS:
            texts = [text, text[:40], query]
            want = self._torch_scores(query, texts)
            got = np.asarray(session.run(None, self._batch(query, texts, "np"))[0]).reshape(-1)
            if got.shape != want.shape or not np.isfinite(got).all():
                return f"it gives {got.shape[0]} scores for {len(texts)} pairs"
            diff = float(np.abs(got - want).max())
            if diff > AGREE:
                return f"its scores differ from torch's by {diff:.3g} (> {AGREE})"
        return ""

    @classmethod
    def load(cls, setting: str, backend: str = "torch",
             cache_dir: Path | None = None) -> CrossEncoder | None:
        """The model a cross_encoder setting names, run by ``backend``; None (with a
        warning saying why and what to do) when it is off, missing, unreadable, for
        another model, or its base model is not installed."""
        if not setting:
            return None
        path = locate(setting)
        if not path.is_file():
            log.warning("no cross-encoder at %s: the ranking is used without it; restore "
                        "the file from the repository or set cross_encoder to \"\"", path)
            return None
        try:
            return cls(*read_cross(path), backend=backend, cache_dir=cache_dir)
        except Exception as e:  # noqa: BLE001 - a bad file must not stop searches
            log.warning("cross-encoder %s is not usable (%s): the ranking is used without "
                        "it; restore the file from the repository or set cross_encoder "
                        "to \"\"", path, e)
            return None

    def texts(self, query: str, articles: Sequence[Article]) -> list[str]:
        """What the model reads beside the question for each article."""
        return pair_texts(self.tokenizer, self.config, query, articles)

    def scores(self, query: str, texts: Sequence[str]) -> np.ndarray:
        """One score per text: higher means more likely to answer the question."""
        if not texts:
            return np.zeros(0, dtype=np.float32)
        with self._lock:
            if self.session is None:
                return self._torch_scores(query, texts)
            out = self.session.run(None, self._batch(query, texts, "np"))[0]
            return np.asarray(out, dtype=np.float32).reshape(-1)

    def order(self, query: str, texts: Sequence[str], scores: Sequence[float] | None = None
              ) -> tuple[list[int], np.ndarray]:
        """The positions of ``texts`` (the ranking's best, best first) in fused order, and
        the cross-encoder's score of each. With the reranker's ``scores`` of the same hits
        and a model whose score_weight is set: ``score + score_weight * its score``;
        otherwise ranks: ``1/(C + rank) + weight/(C + its rank)``."""
        if len(texts) < 2:
            return list(range(len(texts))), self.scores(query, texts)
        ce = self.scores(query, texts)
        if scores is not None and self.config.score_weight > 0:
            joined = (np.asarray(scores, dtype=np.float64)
                      + self.config.score_weight * ce.astype(np.float64))
            return [int(i) for i in np.argsort(-joined, kind="stable")], ce
        ce_rank = np.empty(len(texts), dtype=np.int64)
        ce_rank[np.argsort(-ce, kind="stable")] = np.arange(1, len(texts) + 1)
        fused = [1.0 / (C + i + 1) + self.config.weight / (C + ce_rank[i])
                 for i in range(len(texts))]
        return sorted(range(len(texts)), key=lambda i: (-fused[i], i)), ce
