"""Chat models behind one small interface: in-process llama.cpp (llama.py), or an
OpenAI-compatible server (http.py), with what they share in base.py.

The default model is Qwen2.5-Coder-1.5B-Instruct (Q4 GGUF), joined from its PyPI parts by
answer/modelfile.py; any other GGUF is one setting away (``llm_model_path``), and
``llm_backend = "http"`` talks to llama-server, vLLM or Ollama instead.

    >>> model = load_chat_model(Settings.load())                    # doctest: +SKIP
    >>> gen = model.stream([Message("user", "你好")], max_tokens=16)  # doctest: +SKIP
    >>> "".join(gen), gen.usage.completion_tokens                   # doctest: +SKIP
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from legalrag.answer.llm.base import (
    TURN_STARTED,
    ChatModel,
    Generation,
    Message,
    TurnQueue,
    Usage,
)
from legalrag.answer.llm.http import HttpChatModel, estimate_tokens
from legalrag.answer.llm.llama import LlamaCppModel
from legalrag.answer.modelfile import DEFAULT_MODEL_NAME, chat_model_path
from legalrag.config import Settings

__all__ = ["TURN_STARTED", "ChatModel", "Generation", "HttpChatModel", "LlamaCppModel", "Message",
           "TurnQueue", "Usage", "estimate_tokens", "load_chat_model"]

log = logging.getLogger(__name__)

_MODELS: dict[tuple[Any, ...], ChatModel] = {}
_MODELS_LOCK = threading.Lock()


def load_chat_model(settings: Settings) -> ChatModel:
    """The chat model the settings describe, loaded once per process and shared."""
    if settings.llm_backend == "http":
        key: tuple[Any, ...] = ("http", settings.llm_http_url, settings.llm_http_model,
                                settings.llm_context, settings.llm_http_grammar)
    else:
        path = chat_model_path(settings)
        key = ("llama", str(path), settings.llm_context, settings.llm_threads,
               settings.llm_seed, settings.llm_repeat_penalty)
    with _MODELS_LOCK:
        model = _MODELS.get(key)
        if model is None:
            if key[0] == "http":
                model = HttpChatModel(settings.llm_http_url, model=settings.llm_http_model,
                                      n_ctx=settings.llm_context,
                                      send_grammar=settings.llm_http_grammar)
            else:
                name = DEFAULT_MODEL_NAME if not settings.llm_model_path else None
                t0 = time.perf_counter()
                model = LlamaCppModel(Path(key[1]), n_ctx=settings.llm_context,
                                      threads=settings.llm_threads, seed=settings.llm_seed,
                                      name=name, repeat_penalty=settings.llm_repeat_penalty)
                log.info("loaded %s in %.1f s", model.name, time.perf_counter() - t0)
            _MODELS[key] = model
        return model
