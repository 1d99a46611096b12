"""A cross-encoder: reads the question and each of the best articles together and reorders
the top of the ranking (issue 13).

The ranking before it (BM25, dense, the linear reranker) compares a question and an article
through separate vectors and scores; this model reads both in one pass, the way a person
checks whether an article answers a question. It is m3e-small (the embedding model the
project installs) cut to its first layers, with a linear head on [CLS], trained on the STARD
tune questions by ``bench/train_cross_oof.py`` and shipped in ``data/models/`` (setting
``cross_encoder``). Only the weights that training changed are in the file: the word
embeddings are read from the installed m3e-small, so the file stays a few megabytes.

Its order is fused with the ranking's by reciprocal ranks over the best ``depth`` hits,
``1/(C + rank) + weight/(C + cross-encoder rank)``; hits below them keep their places. The
retriever applies it before cross-references are followed, and not to a question that
names an article (exact lookup).

A missing, unreadable or foreign file is a warning and the ranking as without it, never a
failed search.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)
_REPO = Path(__file__).resolve().parents[3]

FORMAT = 1
FROZEN = "embeddings.word_embeddings.weight"  # the base model's, not in the file
C = 10.0  # the reciprocal-rank constant of the fusion (bench/train_cross.py)


@dataclass(frozen=True)
class CrossConfig:
    """What the file says about the model and how its scores are used."""

    base: str  # the embedding model it was cut from
    layers: int
    max_len: int  # tokens of question + article read per pair
    depth: int  # hits reordered
    weight: float  # its reciprocal ranks' weight beside the ranking's


def locate(setting: str) -> Path:
    """The file a cross_encoder setting names: as given, or, for a relative path that is
    not there, relative to the repository (a command run from another folder)."""
    path = Path(setting)
    if not path.is_absolute() and not path.exists() and (_REPO / path).exists():
        return _REPO / path
    return path


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
                         int(meta["depth"]), float(meta["weight"]))
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


class CrossEncoder:
    """A loaded cross-encoder (torch, CPU). Thread-safe: one pass at a time."""

    def __init__(self, config: CrossConfig, state: Mapping[str, np.ndarray],
                 base_dir: Path | None = None) -> None:
        """The model of ``state`` over its base model's tokenizer and word embeddings
        (base_dir: that model's folder; by default the installed ``config.base``)."""
        import torch
        from transformers import AutoTokenizer, BertModel

        from legalrag.index.embed import embedding_model_dir

        base = base_dir or embedding_model_dir(config.base)
        self.config = config
        self.torch = torch
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

    @classmethod
    def load(cls, setting: str) -> CrossEncoder | None:
        """The model a cross_encoder setting names; None (with a warning saying why and
        what to do) when it is off, missing, unreadable, for another model, or its base
        model is not installed."""
        if not setting:
            return None
        path = locate(setting)
        if not path.is_file():
            log.warning("no cross-encoder at %s: the ranking is used without it; restore "
                        "the file from the repository or set cross_encoder to \"\"", path)
            return None
        try:
            return cls(*read_cross(path))
        except Exception as e:  # noqa: BLE001 - a bad file must not stop searches
            log.warning("cross-encoder %s is not usable (%s): the ranking is used without "
                        "it; restore the file from the repository or set cross_encoder "
                        "to \"\"", path, e)
            return None

    def scores(self, query: str, texts: Sequence[str]) -> np.ndarray:
        """One score per text: higher means more likely to answer the question."""
        if not texts:
            return np.zeros(0, dtype=np.float32)
        torch = self.torch
        batch = self.tokenizer([query] * len(texts), list(texts), truncation="longest_first",
                               max_length=self.config.max_len, padding=True,
                               return_tensors="pt")
        with self._lock, torch.inference_mode():
            cls = self.bert(**batch).last_hidden_state[:, 0]
            return (cls @ self.head_w + self.head_b).numpy()

    def order(self, query: str, texts: Sequence[str]) -> tuple[list[int], np.ndarray]:
        """The positions of ``texts`` (the ranking's best, best first) in fused order, and
        the cross-encoder's score of each: ``1/(C + rank) + weight/(C + its rank)``."""
        if len(texts) < 2:
            return list(range(len(texts))), self.scores(query, texts)
        ce = self.scores(query, texts)
        ce_rank = np.empty(len(texts), dtype=np.int64)
        ce_rank[np.argsort(-ce, kind="stable")] = np.arange(1, len(texts) + 1)
        fused = [1.0 / (C + i + 1) + self.config.weight / (C + ce_rank[i])
                 for i in range(len(texts))]
        return sorted(range(len(texts)), key=lambda i: (-fused[i], i)), ce
