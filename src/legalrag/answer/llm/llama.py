"""A GGUF model run in this process by llama-cpp-python.

One instance is shared per process (:func:`legalrag.answer.llm.load_chat_model` caches it),
and requests take turns through a FIFO :class:`TurnQueue`: a second question waits for the
first answer instead of crashing the context or interleaving tokens.

    >>> model = LlamaCppModel(smollm2_path())                        # doctest: +SKIP
    >>> gen = model.stream([Message("user", "你好")], max_tokens=16)  # doctest: +SKIP
    >>> "".join(gen), gen.usage.completion_tokens                   # doctest: +SKIP
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path

from legalrag.answer.llm.base import (
    TURN_STARTED,
    Cancelled,
    Generation,
    Message,
    TurnQueue,
    TurnStarted,
    Usage,
)
from legalrag.answer.llm.cpu import cpu_watch
from legalrag.answer.llm.special import control_tokens
from legalrag.answer.llm.special import defuse as defuse_template_tokens
from legalrag.errors import ModelError

log = logging.getLogger(__name__)

# Prompt tokens evaluated between two checks for a stop: about half a second of prefill
# for the 1.5B model on two cores, and batches this size lose little speed (bench/llm.py).
PREFILL_CHUNK = 64

# Gemma's chat template (as Google ships it, without the image branches), for Gemma GGUFs
# that carry none: a system message is folded into the first user turn.
GEMMA_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}{%- set first_user_prefix = '' -%}{%- set loop_messages = messages -%}"
    "{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '')"
    " + message['content'] + '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)


class LlamaCppModel:
    """A GGUF run in this process by llama-cpp-python, formatted with the chat template the
    GGUF carries. Requests take turns; consecutive requests sharing a prefix (the system
    prompt) reuse its KV cache, which llama-cpp-python does by itself when tokens match.

    The chat template is applied here rather than through ``create_chat_completion`` so
    that the exact prompt tokens are known: usage is then counted, not estimated, and a
    benchmark can feed the very same tokens to raw llama-cpp-python.
    """

    def __init__(self, path: Path, *, n_ctx: int = 4096, threads: int = 0,
                 seed: int = 42, name: str | None = None,
                 repeat_penalty: float = 1.0, flash_attn: bool = False) -> None:
        try:
            import llama_cpp
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter
        except ImportError as e:  # pragma: no cover - a broken install
            raise ModelError(f"llama-cpp-python cannot be imported: {e}",
                             fix="pip install llama-cpp-python") from None
        self._lib = llama_cpp
        self.path = Path(path)
        self.name = name or self.path.stem
        self.seed = seed
        self.repeat_penalty = repeat_penalty
        # threads > 0: fixed; 0: adapt to what other processes leave free (CpuWatch)
        self.watch = cpu_watch() if threads == 0 else None
        n_threads = threads or os.cpu_count() or 1
        self.threads = n_threads
        try:
            self._llama = llama_cpp.Llama(
                model_path=str(self.path), n_ctx=n_ctx, n_threads=n_threads,
                n_threads_batch=n_threads, seed=seed, flash_attn=flash_attn, verbose=False)
        except (ValueError, RuntimeError) as e:
            raise ModelError(f"llama.cpp cannot load {self.path}: {e}",
                             fix="check that the file is a complete GGUF model") from None
        template = self._llama.metadata.get("tokenizer.chat_template")
        arch = self._llama.metadata.get("general.architecture", "")
        if not template and arch.startswith("gemma"):
            # Some Gemma GGUFs (the 270M test model) carry no template; Gemma's is fixed.
            template = GEMMA_TEMPLATE
        if not template:
            raise ModelError(f"{self.path} has no chat template in its metadata",
                             fix="use an instruction-tuned GGUF that carries one")
        # The model's own turn markers, read from its vocabulary: defused in every
        # message's text, and never produced from it as token ids (prompt_tokens).
        self.control_tokens = control_tokens(self._llama)
        self.template = template
        self._stops = [t for t in ("<end_of_turn>", "<|im_end|>", "<|eot_id|>")
                       if t in self.control_tokens and t in template]
        model = self._llama._model
        eos = model.token_get_text(self._llama.token_eos())
        bos_id = self._llama.token_bos()
        bos = model.token_get_text(bos_id) if bos_id != -1 else ""
        self._formatter = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)
        self._eos_text = eos
        self.n_ctx = self._llama.n_ctx()
        self.queue = TurnQueue()
        # Free the model while llama_cpp is still whole: left to Llama.__del__ at
        # interpreter exit, the free call finds the library's functions already gone and
        # prints a TypeError traceback ('NoneType' object is not callable).
        atexit.register(_close_at_exit, weakref.ref(self._llama))

    def count_tokens(self, text: str) -> int:
        return len(self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def prompt_tokens(self, messages: Sequence[Message]) -> list[int]:
        """The exact tokens the model will evaluate for messages (template applied).

        Only the template's own text is tokenized with special tokens on; each message's
        content (sources, question, history: untrusted) is defused and tokenized with
        them off, so it cannot yield a control token id whatever it spells. The template
        is rendered around placeholders, which are then replaced by the content's tokens.
        """
        marks = [f"\ue000{i}\ue001" for i in range(len(messages))]
        result = self._formatter(messages=[{"role": m.role, "content": mark}
                                           for m, mark in zip(messages, marks, strict=True)])
        prompt, pos = result.prompt, 0
        tokens: list[int] = []
        add_bos = not result.added_special
        for m, mark in zip(messages, marks, strict=True):
            at = prompt.find(mark, pos)
            if at < 0:  # a template that rewrites content: tokenize it whole, defused
                return self._tokenize_whole(messages, add_bos)
            tokens += self._llama.tokenize(prompt[pos:at].encode("utf-8"),
                                           add_bos=add_bos and pos == 0, special=True)
            text = defuse_template_tokens(m.content, self.control_tokens)
            tokens += self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=False)
            pos = at + len(mark)
        tokens += self._llama.tokenize(prompt[pos:].encode("utf-8"), add_bos=False,
                                       special=True)
        return tokens

    def _tokenize_whole(self, messages: Sequence[Message], add_bos: bool) -> list[int]:
        safe = [{"role": m.role, "content": defuse_template_tokens(m.content,
                                                                    self.control_tokens)}
                for m in messages]
        result = self._formatter(messages=safe)
        return self._llama.tokenize(result.prompt.encode("utf-8"), add_bos=add_bos,
                                    special=True)

    def waiting(self) -> int:
        return self.queue.waiting()

    def reset_cache(self) -> None:
        """Forget the KV cache, so the next prompt is evaluated from scratch (benchmarks)."""
        with self.queue.turn():
            self._llama.reset()
            self._llama._ctx.kv_cache_clear()

    def _adapt_threads(self) -> int:
        """Switch to the thread count CpuWatch suggests (no-op with fixed threads)."""
        if self.watch is not None and self.watch.available:
            n = self.watch.threads()
            if n != self.threads:
                log.info("llama.cpp threads %d -> %d (other processes busy on %.1f cores)",
                         self.threads, n, self.watch.others)
                self._llama._ctx.set_n_threads(n, n)
                self.threads = n
        return self.threads

    def _perf(self) -> tuple[float, float, int, int]:
        p = self._lib.llama_perf_context(self._llama._ctx.ctx)
        return p.t_p_eval_ms, p.t_eval_ms, p.n_p_eval, p.n_eval

    def _cached_prefix(self, tokens: list[int]) -> int:
        """How many leading prompt tokens llama-cpp-python will take from its KV cache."""
        held = self._llama._input_ids[: self._llama.n_tokens]
        n = 0
        for a, b in zip(held, tokens, strict=False):
            if a != b:
                break
            n += 1
        return min(n, len(tokens) - 1)  # the last prompt token is always re-evaluated

    def _prefill(self, tokens: list[int], gen: Generation) -> bool:
        """Evaluate the prompt but its last token, PREFILL_CHUNK tokens at a time, and
        False as soon as gen is cancelled between two chunks: a stop during a prefill of
        seconds takes effect within a fraction of one. create_completion then finds the
        prompt in the KV cache and evaluates only the last token."""
        llama = self._llama
        cached = self._cached_prefix(tokens)
        llama.n_tokens = cached  # eval() drops the KV cache past n_tokens
        for i in range(cached, len(tokens) - 1, PREFILL_CHUNK):
            if gen.cancelled:
                return False
            llama.eval(tokens[i:min(i + PREFILL_CHUNK, len(tokens) - 1)])
        return not gen.cancelled

    def stream(self, messages: Sequence[Message], *, max_tokens: int,
               temperature: float = 0.0, stop: Sequence[str] = (),
               seed: int | None = None, grammar: str | None = None,
               cancel: threading.Event | None = None) -> Generation:
        tokens = self.prompt_tokens(messages)
        compiled = self._grammar(grammar) if grammar else None
        if len(tokens) + max_tokens > self.n_ctx:
            raise ModelError(f"prompt of {len(tokens)} tokens plus {max_tokens} answer tokens "
                             f"exceeds the model context of {self.n_ctx}",
                             fix="raise llm_context or lower llm_max_tokens")

        def run(gen: Generation) -> Iterator[str | TurnStarted]:
            arrived = time.perf_counter()
            try:
                yield from serve(gen, arrived)
            except Cancelled:  # stopped while waiting for the model: nothing was run
                end = time.perf_counter()
                gen.usage = Usage(len(tokens), 0, 0, (end - arrived) * 1000, 0.0, 0.0, 0, 0.0,
                                  0, 0.0, "cancelled", self.threads)

        def serve(gen: Generation, arrived: float) -> Iterator[str | TurnStarted]:
            with self.queue.turn(gen.cancel_event):
                start = time.perf_counter()
                yield TURN_STARTED
                cached = self._cached_prefix(tokens)
                threads = self._adapt_threads()
                perf0 = self._perf()
                first = 0.0
                finish = "cancelled"
                chunks = iter(())
                try:
                    if self._prefill(tokens, gen):
                        chunks = self._llama.create_completion(
                            prompt=tokens, stream=True, max_tokens=max_tokens,
                            temperature=temperature, top_p=0.95, top_k=40, min_p=0.05,
                            repeat_penalty=self.repeat_penalty,
                            seed=self.seed if seed is None else seed,
                            stop=[self._eos_text, *self._stops, *stop], grammar=compiled)
                    for i, chunk in enumerate(chunks, 1):
                        if gen.cancelled:
                            finish = "cancelled"
                            break
                        choice = chunk["choices"][0]
                        finish = choice.get("finish_reason") or finish
                        piece = choice.get("text")
                        if piece:
                            first = first or time.perf_counter()
                            yield piece
                        if i % 16 == 0:  # contention changes while an answer is written
                            self._adapt_threads()
                finally:
                    if hasattr(chunks, "close"):
                        chunks.close()
                    end = time.perf_counter()
                    t_p, t_e, n_p, n_e = (b - a for a, b in zip(perf0, self._perf(),
                                                              strict=True))
                    # The state now holds prompt + completion; the final sampled token
                    # (end-of-turn or the one that hit max_tokens) is never evaluated.
                    # llama-cpp-python sometimes evaluates that last token too (seen when
                    # its stop-string look-ahead held text back), so cap at max_tokens.
                    completion = min(max(self._llama.n_tokens - len(tokens) + 1, 0), max_tokens)
                    gen.usage = Usage(
                        prompt_tokens=len(tokens), completion_tokens=completion,
                        cached_tokens=cached, queue_ms=(start - arrived) * 1000,
                        first_token_ms=((first or end) - start) * 1000,
                        total_ms=(end - start) * 1000,
                        prefill_tokens=int(n_p), prefill_ms=float(t_p),
                        decode_tokens=int(n_e), decode_ms=float(t_e),
                        finish_reason=finish, threads=threads)

        return Generation(run, cancel)

    def _grammar(self, gbnf: str):
        """A GBNF text compiled for llama.cpp; a grammar llama.cpp cannot parse is our
        bug, reported as a ModelError naming it rather than a crash in the sampler."""
        try:
            return self._lib.LlamaGrammar.from_string(gbnf, verbose=False)
        except (ValueError, RuntimeError) as e:
            raise ModelError(f"llama.cpp rejected the citation grammar: {e}",
                             fix="report this question; set answer_grammar = false "
                                 "to answer without the grammar meanwhile") from None


def _close_at_exit(ref: weakref.ref) -> None:
    llama = ref()
    if llama is not None:
        llama.close()
