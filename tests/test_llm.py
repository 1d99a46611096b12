"""Model files and the two chat backends, with the real SmolLM2-135M GGUF: in process
through llama-cpp-python, and over HTTP against a real llama-cpp-python server on loopback.
Greedy decoding (temperature 0) with a fixed seed, so outputs are reproducible."""

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from legalrag.answer.llm import (
    TURN_STARTED,
    Generation,
    HttpChatModel,
    LlamaCppModel,
    Message,
    TurnQueue,
    estimate_tokens,
    load_chat_model,
)
from legalrag.answer.llm.cpu import CpuWatch, cpu_watch, others_cores
from legalrag.answer.llm.http import _sse_events
from legalrag.answer.modelfile import (
    DEFAULT_MODEL_SIZE,
    PART_COUNT,
    chat_model_path,
    default_model_parts,
    join_parts,
    smollm2_path,
)
from legalrag.config import Settings
from legalrag.errors import ModelError

QUESTION = [Message("system", "You are a helpful assistant. Answer in one short sentence."),
            Message("user", "What is the capital of France?")]


@pytest.fixture(scope="session")
def smol() -> LlamaCppModel:
    return LlamaCppModel(smollm2_path(), n_ctx=1024, threads=2, seed=7)


# -- model files ----------------------------------------------------------------------------

def write_parts(tmp_path: Path, chunks: list[bytes]) -> list[Path]:
    parts = []
    for i, data in enumerate(chunks, 1):
        p = tmp_path / f"part{i:02d}.bin"
        p.write_bytes(data)
        parts.append(p)
    return parts


@pytest.mark.fast
def test_join_parts_verifies_and_reuses(tmp_path):
    parts = write_parts(tmp_path, [b"GGUF\x03\x00", b"abc", b"def"])
    whole = b"GGUF\x03\x00abcdef"
    target = tmp_path / "models" / "m.gguf"
    sha = hashlib.sha256(whole).hexdigest()
    assert join_parts(parts, target, sha256=sha, size=len(whole)) == target
    assert target.read_bytes() == whole
    assert json.loads((tmp_path / "models" / "m.gguf.sha256").read_text()) == {
        "sha256": sha, "size": len(whole)}
    mtime = target.stat().st_mtime_ns
    join_parts(parts, target, sha256=sha, size=len(whole))  # reused, not rewritten
    assert target.stat().st_mtime_ns == mtime
    assert sorted(p.name for p in target.parent.iterdir()) == [
        ".m.gguf.lock", "m.gguf", "m.gguf.sha256"]  # no temporary file left behind


@pytest.mark.fast
def test_join_parts_rejects_damage(tmp_path):
    parts = write_parts(tmp_path, [b"GGUF", b"xyz"])
    target = tmp_path / "m.gguf"
    with pytest.raises(ModelError, match="sha256"):
        join_parts(parts, target, sha256="0" * 64, size=7)
    assert not target.exists() and not list(tmp_path.glob(".m.gguf.*.tmp"))
    with pytest.raises(ModelError, match="add up to 7 bytes, expected 8"):
        join_parts(parts, target, sha256=None, size=8)
    (tmp_path / "bad").mkdir()
    bad = write_parts(tmp_path / "bad", [b"NOPE", b"!"])
    with pytest.raises(ModelError, match="not a GGUF"):
        join_parts(bad, tmp_path / "bad.gguf", sha256=None, size=None)


@pytest.mark.fast
def test_a_size_mismatch_rejoins(tmp_path):
    parts = write_parts(tmp_path, [b"GGUF", b"12"])
    target = tmp_path / "m.gguf"
    join_parts(parts, target, sha256=None, size=None)
    target.write_bytes(b"GGUF1")  # truncated by a crash or a full disk
    join_parts(parts, target, sha256=None, size=None)
    assert target.read_bytes() == b"GGUF12"


def test_default_model_parts_are_installed():
    parts = default_model_parts()
    assert len(parts) == PART_COUNT
    assert [p.name for p in parts] == [f"part{i:02d}.bin" for i in range(1, 23)]
    assert sum(p.stat().st_size for p in parts) == DEFAULT_MODEL_SIZE
    assert parts[0].read_bytes()[:4] == b"GGUF"


def test_model_path_setting(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        chat_model_path(Settings.load(env={}, llm_model_path=str(tmp_path / "none.gguf")))
    (tmp_path / "x.gguf").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="not a GGUF"):
        chat_model_path(Settings.load(env={}, llm_model_path=str(tmp_path / "x.gguf")))
    s = Settings.load(env={}, llm_model_path=str(smollm2_path()))
    assert chat_model_path(s) == smollm2_path()


@pytest.mark.fast
def test_estimate_tokens():
    assert estimate_tokens("劳动合同") == 4
    assert estimate_tokens("abcdefg") == 3
    assert estimate_tokens("第47条，abc") == 3 + 2  # 第 条 ， / "47abc" in threes


# -- llama.cpp in process -------------------------------------------------------------------

def test_llama_generation_is_deterministic_and_counted(smol):
    smol.reset_cache()
    first = smol.stream(QUESTION, max_tokens=24, temperature=0.0)
    text = first.text()
    assert "Paris" in text
    prompt = len(smol.prompt_tokens(QUESTION))
    u = first.usage
    assert u.prompt_tokens == prompt and u.cached_tokens == 0
    assert u.finish_reason == "stop" and 0 < u.completion_tokens <= 24
    assert u.prefill_ms > 0 and u.first_token_ms > 0 and u.total_ms >= u.first_token_ms
    again = smol.stream(QUESTION, max_tokens=24, temperature=0.0)
    assert again.text() == text
    # The same prompt again: all but the last prompt token come from the KV cache.
    assert again.usage.cached_tokens == prompt - 1
    short = smol.stream(QUESTION, max_tokens=3, temperature=0.0)
    assert text.startswith(short.text())
    assert short.usage.finish_reason == "length" and short.usage.completion_tokens == 3


def test_count_tokens_uses_the_model_tokenizer(smol):
    assert smol.count_tokens("") == 0
    assert smol.count_tokens("Paris") == 1
    assert smol.count_tokens("hello world hello world") == 4


def test_prompt_too_long_for_context(smol):
    with pytest.raises(ModelError, match="exceeds the model context"):
        smol.stream([Message("user", "word " * 900)], max_tokens=200)


def test_concurrent_requests_queue_instead_of_interleaving(smol):
    expected = smol.stream(QUESTION, max_tokens=12).text()
    first = smol.stream(QUESTION, max_tokens=12)
    head = next(first)  # first now holds the model, suspended mid-answer
    results: dict[str, str] = {}
    second_gen = smol.stream(QUESTION, max_tokens=12)

    def second() -> None:
        results["second"] = second_gen.text()

    t = threading.Thread(target=second)
    t.start()
    time.sleep(0.3)
    assert smol.waiting() == 2 and "second" not in results  # waiting, not interleaving
    results["first"] = head + first.text()
    t.join(60)
    assert results == {"first": expected, "second": expected}
    assert second_gen.usage.queue_ms >= 250
    assert smol.waiting() == 0


def test_closing_a_generation_early_frees_the_model(smol):
    gen = smol.stream(QUESTION, max_tokens=12)
    next(gen)
    gen.close()
    assert gen.usage.finish_reason == "cancelled"
    assert smol.waiting() == 0
    assert "Paris" in smol.stream(QUESTION, max_tokens=12).text()


def test_wait_turn_returns_when_the_model_starts_on_the_request(smol):
    """wait_turn blocks while another generation holds the model and returns when this
    one's turn starts, before its prefill and first token; the text is unchanged; stopped
    in the line, it returns False and nothing is generated."""
    expected = smol.stream(QUESTION, max_tokens=12).text()
    first = smol.stream(QUESTION, max_tokens=12)
    head = next(first)  # first holds the model
    second = smol.stream(QUESTION, max_tokens=12)
    started: list[float] = []
    t = threading.Thread(target=lambda: started.append(time.perf_counter())
                         if second.wait_turn() else None)
    t.start()
    time.sleep(0.3)
    assert not started and smol.waiting() == 2
    released_at = time.perf_counter()
    assert head + first.text() == expected
    t.join(60)
    assert started and started[0] >= released_at and second.usage is None  # not yet run
    assert second.text() == expected and second.usage.completion_tokens > 0
    # Stopped while queued: wait_turn gives up, the model is free, no tokens are made.
    first = smol.stream(QUESTION, max_tokens=12)
    next(first)
    cancel = threading.Event()
    third = smol.stream(QUESTION, max_tokens=12, cancel=cancel)
    threading.Timer(0.2, cancel.set).start()
    assert third.wait_turn() is False and third.usage.finish_reason == "cancelled"
    first.close()
    assert smol.waiting() == 0 and third.text() == ""


@pytest.mark.fast
def test_wait_turn_without_a_turn_signal_keeps_the_first_piece():
    """A backend that never yields TURN_STARTED (a test double, a plain iterator): the turn
    counts as started at its first piece, which is kept for the reader."""
    gen = Generation(lambda g: iter(["第一", "第二"]))
    assert gen.wait_turn() and gen.wait_turn()
    assert gen.text() == "第一第二"
    assert Generation(lambda g: iter(())).wait_turn() is False
    signalled = Generation(lambda g: iter([TURN_STARTED, "甲", "乙"]))
    assert signalled.wait_turn() and list(signalled) == ["甲", "乙"]


@pytest.mark.fast
def test_cpu_contention_arithmetic():
    assert others_cores((100, 200, 10), (250, 400, 60), 2) == 1.0
    assert others_cores((0, 0, 0), (100, 400, 100), 4) == 0.0  # all the busy time was ours
    assert others_cores((5, 5, 5), (5, 5, 5), 2) == 0.0
    watch = CpuWatch.__new__(CpuWatch)
    watch.cores = 2
    for others, threads in ((0.0, 2), (0.4, 2), (0.6, 1), (1.0, 1), (2.0, 1)):
        watch.others = others
        assert watch.threads() == threads


def test_adaptive_threads_follow_the_watch(smol):
    auto = LlamaCppModel(smollm2_path(), n_ctx=512, threads=0)
    assert auto.watch is cpu_watch() and auto.watch.available  # Linux: /proc is there
    assert smol.watch is None and smol.threads == 2  # fixed threads are left alone
    busy = CpuWatch.__new__(CpuWatch)  # a watch that reports both cores taken, no thread
    busy.cores, busy.others, busy.available = 2, 2.0, True
    auto.watch = busy
    gen = auto.stream(QUESTION, max_tokens=4)
    gen.text()
    assert gen.usage.threads == 1 == auto.threads
    busy.others = 0.0
    gen = auto.stream(QUESTION, max_tokens=4)
    gen.text()
    assert gen.usage.threads == 2 == auto.threads


@pytest.mark.fast
def test_turn_queue_is_first_come_first_served():
    q = TurnQueue()
    order: list[int] = []
    aheads: dict[int, int] = {}
    gate = threading.Event()

    def worker(i: int) -> None:
        with q.turn() as ahead:
            aheads[i] = ahead
            order.append(i)
            if i == 0:
                gate.wait(5)

    threads = []
    for i in range(4):
        t = threading.Thread(target=worker, args=(i,))
        t.start()
        threads.append(t)
        while q.waiting() < i + 1:  # make arrival order deterministic
            time.sleep(0.005)
    gate.set()
    for t in threads:
        t.join(5)
    assert order == [0, 1, 2, 3] and aheads == {0: 0, 1: 1, 2: 2, 3: 3}
    assert q.waiting() == 0


def test_one_model_instance_per_process():
    s = Settings.load(env={}, llm_model_path=str(smollm2_path()), llm_context=512,
                      llm_max_tokens=128)  # 512 answer tokens cannot fit in 512
    assert load_chat_model(s) is load_chat_model(s)


# -- OpenAI-compatible HTTP -----------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server_url():
    """A real llama-cpp-python OpenAI-compatible server on loopback, serving SmolLM2."""
    port = free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_path()),
           "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "1024",
           "--n_threads", "2", "--seed", "7", "--verbose", "False"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited: {proc.stderr.read().decode()[-2000:]}")
            try:
                with urllib.request.urlopen(url + "/models", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("llama_cpp.server did not start within 120 s")
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_http_backend_streams_from_a_real_server(server_url, smol):
    model = HttpChatModel(server_url, model="smollm2", n_ctx=1024)
    gen = model.stream(QUESTION, max_tokens=24, temperature=0.0, seed=7)
    pieces = list(gen)
    assert len(pieces) > 1  # streamed piece by piece, not in one block
    text = "".join(pieces)
    assert "Paris" in text
    assert gen.usage.completion_tokens >= len(pieces) - 1
    assert gen.usage.finish_reason in ("stop", "length")
    assert model.count_tokens("劳动合同") == 4 and model.waiting() == 0
    again = model.stream(QUESTION, max_tokens=24, temperature=0.0, seed=7).text()
    assert again == text


def test_http_backend_through_settings(server_url):
    s = Settings.load(env={}, llm_backend="http", llm_http_url=server_url,
                      llm_http_model="smollm2", llm_context=1024)
    model = load_chat_model(s)
    assert isinstance(model, HttpChatModel) and model.n_ctx == 1024
    assert model.stream(QUESTION, max_tokens=8).text()


@pytest.mark.fast
def test_http_backend_errors_are_model_errors():
    model = HttpChatModel(f"http://127.0.0.1:{free_port()}/v1")
    with pytest.raises(ModelError, match="unreachable"):
        model.stream(QUESTION, max_tokens=4).text()


@pytest.mark.fast
def test_sse_parsing():
    lines = [b'data: {"choices": [{"delta": {"content": "a"}}]}\n', b"\n", b": keep-alive\n",
             b"\n", b'data: {"choices": [{"delta": {"content": "b"}}]}\r\n', b"\r\n",
             b"data: [DONE]\n", b"\n", b'data: {"never": 1}\n', b"\n"]
    assert [e["choices"][0]["delta"]["content"] for e in _sse_events(lines)] == ["a", "b"]
    with pytest.raises(ModelError, match="malformed"):
        list(_sse_events([b"data: {oops\n", b"\n"]))
