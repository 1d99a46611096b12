"""Article vectors shipped with the repository, so a first build embeds only what is new.

Embedding the corpus is most of a first build: 63,310 distinct texts, 33 minutes on a
2-core AVX2-only CPU (docs/benchmarks.md). The repository ships their vectors in
``data/vectors/`` (setting ``shipped_vectors``), written by ``scripts/ship_vectors.py``
from a live index: int8 with one scale per vector (cosine to the original ≥ 0.9998),
keyed by the content key of the text the build embeds, so an article a maintainer adds or
amends has a new key and is embedded as before.

A build takes a shipped vector only when the file was made by the same model, backend and
token limit (the manifest's embedder identity) and when it agrees with this machine: a
random sample of the texts it covers is embedded afresh and every cosine must reach
CHECK_MIN_COSINE. Otherwise, and when the file is missing or unreadable, the build says
why and embeds everything, as without it. A shipped file never makes a build fail.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)
_REPO = Path(__file__).resolve().parents[3]

FORMAT = 1
# Texts embedded afresh to check a file: a few seconds on 2 cores; a file wrong for a few
# percent of its texts is caught most of the time, one wrong for most texts always.
CHECK_SAMPLE = 256
# The same bar the int8 export must clear against fp32 (index/embed.py): vectors another
# CPU made agree with this one's at least as well as this one's int8 agrees with fp32, and
# the question encoder is trained on whatever vectors the index holds. Even the vector of
# the next article of the same law falls below it for most articles.
CHECK_MIN_COSINE = 0.95


@dataclass(frozen=True)
class Shipped:
    """The usable vectors of a shipped file, and what the check found."""

    vectors: dict[str, np.ndarray]  # content key -> unit vector (float32)
    checked: int = 0
    min_cosine: float = 1.0


def write_shipped(path: Path, keys: Sequence[str], vectors: np.ndarray,
                  identity: Mapping) -> None:
    """Write vectors (unit rows, aligned with keys) as int8 and a float16 scale per row."""
    scale = np.abs(vectors).max(axis=1, keepdims=True)
    scale[scale == 0] = 1.0
    q = np.round(vectors / scale * 127).astype(np.int8)
    meta = {"format": FORMAT, "name": identity["name"], "fingerprint": identity["fingerprint"],
            "dim": int(identity["dim"])}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, keys=np.array(list(keys), dtype="S24"), vectors=q,
                        scales=scale.astype(np.float16), meta=np.array(json.dumps(meta)))
    tmp.replace(path)


def locate(setting: str) -> Path:
    """The file a shipped_vectors setting names: as given, or, for a relative path that
    is not there, relative to the repository (a command run from another folder)."""
    path = Path(setting)
    if not path.is_absolute() and not path.exists() and (_REPO / path).exists():
        return _REPO / path
    return path


def read_shipped(path: Path, identity: Mapping) -> dict[str, np.ndarray]:
    """The file's vectors by content key; empty (with a warning naming why) when the file
    is missing, unreadable or made by another embedder. Rows that are not finite or are
    zero are left out (those texts are embedded)."""
    if not path.is_file():
        log.warning("no shipped vectors at %s: every text is embedded", path)
        return {}
    try:
        with np.load(path, allow_pickle=False) as f:
            meta = json.loads(str(f["meta"]))
            keys, q, scales = f["keys"], f["vectors"], f["scales"]
        if not isinstance(meta, dict) or keys.ndim != 1 or keys.dtype.kind != "S" \
                or q.dtype != np.int8 or scales.dtype.kind != "f":
            raise ValueError("not a file of scripts/ship_vectors.py")
        names = [k.decode("ascii") for k in keys]
    except Exception as e:  # noqa: BLE001 - any unreadable file means: embed everything
        log.warning("shipped vectors %s cannot be read (%s): every text is embedded; "
                    "write them again with scripts/ship_vectors.py", path, e)
        return {}
    want = (FORMAT, identity["name"], identity["fingerprint"], int(identity["dim"]))
    have = (meta.get("format"), meta.get("name"), meta.get("fingerprint"), meta.get("dim"))
    if have != want or q.shape != (len(keys), want[3]) or scales.shape != (len(keys), 1):
        log.warning("shipped vectors %s were made by %s, this build embeds with %s: "
                    "every text is embedded", path, meta.get("name"), identity["name"])
        return {}
    v = q.astype(np.float32) * (scales.astype(np.float32) / 127)
    norms = np.linalg.norm(v, axis=1)
    good = np.isfinite(norms) & (norms > 1e-6)
    if not good.all():
        log.warning("shipped vectors %s: %d rows are not finite or zero and are embedded",
                    path, int((~good).sum()))
    v[good] /= norms[good, None]
    return {k: row for k, row, ok in zip(names, v, good, strict=True) if ok}


def usable(shipped: Mapping[str, np.ndarray], texts: Mapping[str, str],
           embed: Callable[[list[str]], np.ndarray], seed: int | None = None) -> Shipped:
    """The shipped vectors of texts (content key -> text) if a fresh embedding of a
    random sample of them agrees; none if it does not."""
    covered = sorted(k for k in texts if k in shipped)
    if not covered:
        return Shipped({})
    rng = np.random.default_rng(seed)
    sample = [covered[i] for i in rng.choice(len(covered), min(CHECK_SAMPLE, len(covered)),
                                             replace=False)]
    fresh = embed([texts[k] for k in sample])
    cos = np.einsum("ij,ij->i", fresh, np.stack([shipped[k] for k in sample]))
    worst = float(cos.min())
    if not worst >= CHECK_MIN_COSINE:  # NaN fails too
        log.warning("shipped vectors disagree with this machine's embedding (cosine %.3f "
                    "< %.2f on a sample of %d): every text is embedded", worst,
                    CHECK_MIN_COSINE, len(sample))
        return Shipped({}, len(sample), worst)
    return Shipped({k: shipped[k] for k in covered}, len(sample), worst)


__all__ = ["CHECK_MIN_COSINE", "CHECK_SAMPLE", "Shipped", "locate", "read_shipped", "usable",
           "write_shipped"]
