"""Load: N concurrent chat sessions against the browser app on 127.0.0.1.

    .venv/bin/python bench/load_chat.py                      # starts its own app (SmolLM2)
    .venv/bin/python bench/load_chat.py --sessions 8 --questions 3 --deadline 900
    .venv/bin/python bench/load_chat.py --url http://127.0.0.1:7860/ [--pid PID] [--auth u:p]

Without --url the script builds a small index in a work folder (a few statute files copied
from corpus/, or --corpus/--index-dir), starts `legalrag serve` on a free loopback port with
the small SmolLM2 GGUF (--model for another), asks one warm-up question, then runs the load,
stops the server it started, and prints a Markdown report (JSON beside it with --out).

Each session is one browser session (its own Gradio session hash, so the app keeps its
conversation and rewrites follow-ups) and asks its questions one after another, like a
person who reads each answer before typing the next. The client speaks the app's own HTTP
API (Gradio's queue: POST queue/join, then the server-sent event stream of queue/data), so
every update's arrival time is measured, not only the final answer.

Measured per question: the Gradio queue wait (join → the handler starts), the time until
the sources are on screen, the time to the first answer token, the total time, and the
outcome (answered, abstained, error). From the app's own question log (JSON lines, started
with LEGALRAG_LOG_FILE): the wait in the model's queue and the model's token counts. The
server's resident memory (RSS) is sampled every half second from /proc.

An error is anything a person would see as one: a failed request, a `queue_full`, a
stream that ends without a result, an error message in the chat, a stopped answer, or a
question still unanswered at its timeout. The script exits 1 when there was any error.

Bounded: a fixed number of questions, a per-question timeout and an overall deadline;
only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CORPUS_FILES = [
    "社会法/劳动法(2018-12-29).md",
    "社会法/劳动合同法(2012-12-28).md",
    "民法典/婚姻家庭编.md",
    "民法典/继承编.md",
    "民法商法/消费者权益保护法(2013-10-25).md",
    "行政法/治安管理处罚法(2012-10-26).md",
    "laws.sqlite3",
]
# One conversation per session: a question, a follow-up the app must rewrite, a new topic.
CONVERSATIONS = [
    ["试用期最长可以约定多久？", "那如果劳动合同期限不满一年呢？", "公司拖欠工资怎么办？"],
    ["公司解除劳动合同要给经济补偿吗？", "经济补偿怎么计算？", "《劳动合同法》第四十七条是什么？"],
    ["离婚时夫妻共同财产怎么分割？", "那如果一方有过错呢？", "结婚的法定年龄是多少？"],
    ["父母去世没有遗嘱，遗产怎么继承？", "那兄弟姐妹能继承吗？", "遗嘱有哪几种形式？"],
    ["商家卖假货，消费者可以要求几倍赔偿？", "那网购可以七天无理由退货吗？",
     "《消费者权益保护法》第五十五条怎么规定？"],
    ["打架斗殴会被拘留几天？", "如果是未满十六周岁的人呢？", "醉酒后闹事怎么处罚？"],
    ["加班费怎么计算？", "那休息日加班呢？", "劳动者每天工作时间不超过几小时？"],
    ["用人单位不签书面劳动合同怎么办？", "那要支付双倍工资吗？", "劳动合同无效的情形有哪些？"],
]
HEARTBEAT_GRACE = 40.0  # seconds without any event (Gradio sends a heartbeat every 15 s)


# ---------------------------------------------------------------- one question


@dataclass
class Record:
    """What one question went through, seen from the client. Times in seconds from join."""

    session: int
    turn: int
    question: str
    outcome: str = "error"  # answered, abstained, error
    error: str = ""
    gradio_wait: float | None = None  # join → handler started
    sources: float | None = None  # the retrieved articles are on screen
    queued: float | None = None  # first "waiting for the model" notice, if any
    first_token: float | None = None
    total: float | None = None
    updates: int = 0


class ChatClient:
    """The app's `ask` endpoint over plain HTTP (Gradio's queue protocol)."""

    def __init__(self, url: str, auth: tuple[str, str] | None = None) -> None:
        host = urlparse(url).hostname
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise SystemExit(f"load_chat: only loopback addresses are allowed, not {host}")
        self.url = url.rstrip("/")
        self.http = httpx.Client(timeout=httpx.Timeout(30.0, read=HEARTBEAT_GRACE))
        if auth:
            r = self.http.post(f"{self.url}/login", data={"username": auth[0],
                                                           "password": auth[1]})
            r.raise_for_status()
        config = self.http.get(f"{self.url}/config").raise_for_status().json()
        self.api = self.url + config.get("api_prefix", "/gradio_api")
        deps = config["dependencies"]
        matches = [i for i, d in enumerate(deps) if d.get("api_name") == "ask"]
        if not matches:
            raise SystemExit("load_chat: the app has no `ask` endpoint")
        self.fn_index = deps[matches[0]].get("id", matches[0])

    def close(self) -> None:
        self.http.close()

    def ask(self, record: Record, session_hash: str, *, k: int, max_tokens: int,
            timeout: float) -> Record:
        """Ask record.question in the browser session session_hash; fill in record."""
        t0 = time.monotonic()
        body = {"data": [record.question, None, k, "hybrid", False, max_tokens],
                "fn_index": self.fn_index, "session_hash": session_hash,
                "event_data": None, "trigger_id": None}
        event_id = ""
        try:
            joined = self.http.post(f"{self.api}/queue/join", json=body)
            if joined.status_code != 200:
                record.error = f"join answered {joined.status_code}: {joined.text[:200]}"
                return record
            event_id = joined.json()["event_id"]
            for msg in self._events(session_hash, t0, timeout):
                if msg.get("event_id") not in (None, event_id):
                    continue
                now = time.monotonic() - t0
                kind = msg.get("msg")
                if kind == "queue_full":
                    record.error = "queue_full"
                    return record
                if kind == "process_starts":
                    record.gradio_wait = now
                elif kind == "process_generating":
                    record.updates += 1
                    self._seen(record, msg["output"]["data"], now)
                elif kind == "process_completed":
                    record.total = now
                    self._finish(record, msg)
                    return record
                elif kind in ("unexpected_error", "server_stopped"):
                    record.error = f"{kind}: {str(msg.get('message'))[:200]}"
                    return record
            record.error = "the event stream ended without a result"
        except TimeoutError:
            record.error = f"no result after {timeout:.0f} s"
            self._cancel(session_hash, event_id)
        except (httpx.HTTPError, ValueError, KeyError) as e:
            record.error = f"{type(e).__name__}: {e}"[:300]
        return record

    def _events(self, session_hash: str, t0: float, timeout: float) -> Iterator[dict]:
        with self.http.stream("GET", f"{self.api}/queue/data",
                              params={"session_hash": session_hash}) as resp:
            resp.raise_for_status()
            for line in resp.iter_lines():
                if time.monotonic() - t0 > timeout:
                    raise TimeoutError
                if line.startswith("data:"):
                    yield json.loads(line[5:])

    @staticmethod
    def _seen(record: Record, data: list, now: float) -> None:
        """Note the first update that shows sources, a queue notice, an answer token."""
        chat, panel = json.dumps(data[1], ensure_ascii=False), json.dumps(data[2])
        if record.sources is None and "lr-src" in panel:
            record.sources = now
        if record.queued is None and "lr-queue" in chat:
            record.queued = now
        if record.first_token is None and "lr-cursor" in chat:
            record.first_token = now

    @staticmethod
    def _finish(record: Record, msg: dict) -> None:
        if not msg.get("success", False):
            record.error = f"failed: {str(msg.get('output', {}).get('error'))[:200]}"
            return
        messages = msg["output"]["data"][1]
        content = messages[-1]["content"] if messages else ""
        if isinstance(content, list):
            content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
        if "lr-error" in content:
            record.error = "error shown in the chat: " + _strip_tags(content)[:200]
        elif "（已停止）" in content:
            record.error = "answer stopped"
        elif "lr-abstain" in content:
            record.outcome = "abstained"
        elif "lr-answer" in content:
            record.outcome = "answered"
            if record.first_token is None:  # the whole answer came in one update
                record.first_token = record.total
        else:
            record.error = "no answer in the final chat: " + _strip_tags(content)[:200]

    def _cancel(self, session_hash: str, event_id: str) -> None:
        try:
            self.http.post(f"{self.api}/cancel", json={
                "session_hash": session_hash, "fn_index": self.fn_index, "event_id": event_id})
        except httpx.HTTPError:
            pass


def _strip_tags(html: str) -> str:
    return re.sub(r"<[^>]+>", "", html).strip()


# ---------------------------------------------------------------- the server


@dataclass
class Memory:
    """RSS samples of one process, from /proc (kB → MB)."""

    pid: int
    samples: list[tuple[float, float]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def rss_mb(self, key: str = "VmRSS") -> float | None:
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None

    def start(self) -> None:
        t0 = time.monotonic()

        def loop() -> None:
            while not self._stop.wait(0.5):
                rss = self.rss_mb()
                if rss is not None:
                    self.samples.append((time.monotonic() - t0, rss))

        threading.Thread(target=loop, daemon=True, name="rss").start()

    def stop(self) -> dict:
        self._stop.set()
        values = [v for _, v in self.samples]
        return {"pid": self.pid, "rss_peak_mb": round(max(values), 1) if values else None,
                "rss_end_mb": round(values[-1], 1) if values else None,
                "hwm_mb": _round(self.rss_mb("VmHWM"))}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def legalrag(corpus: Path, index_dir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "legalrag", "--corpus", str(corpus), "--index-dir",
            str(index_dir), *args]


class Server:
    """`legalrag serve` on 127.0.0.1, started and stopped by this script."""

    def __init__(self, work: Path, corpus: Path, index_dir: Path, model: Path, port: int,
                 threads: int | None) -> None:
        self.work, self.corpus, self.index_dir = work, corpus, index_dir
        self.url = f"http://127.0.0.1:{port}/"
        self.log_file = work / "questions.jsonl"
        self.log_file.unlink(missing_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEGALRAG_")}
        env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
                   LEGALRAG_LOG_FILE=str(self.log_file))
        if "LEGALRAG_CACHE_DIR" in os.environ:
            env["LEGALRAG_CACHE_DIR"] = os.environ["LEGALRAG_CACHE_DIR"]
        if threads is not None:
            env["LEGALRAG_LLM_THREADS"] = str(threads)
        self.env = env
        self.cmd = legalrag(corpus, index_dir, "serve", "--host", "127.0.0.1", "--port",
                            str(port), "--model", str(model))
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float) -> None:
        self._log = (self.work / "server.log").open("wb")
        self.proc = subprocess.Popen(self.cmd, cwd=self.work, env=self.env,
                                     stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"load_chat: the server exited ({self.proc.returncode}); "
                                 f"see {self.work / 'server.log'}")
            try:
                if httpx.get(self.url + "config", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(1)
        self.stop()
        raise SystemExit(f"load_chat: the server did not start within {timeout:.0f} s")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)  # `legalrag serve` closes on Ctrl-C
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._log.close()

    def question_log(self) -> list[dict]:
        if not self.log_file.exists():
            return []
        return [json.loads(line) for line in self.log_file.read_text("utf-8").splitlines()
                if line.startswith("{")]


def prepare_index(work: Path, corpus: Path | None, index_dir: Path | None) -> tuple[Path, Path]:
    """The corpus and index to serve: given ones, or a small copy built here."""
    if corpus is None:
        corpus = work / "corpus"
        if not corpus.exists():
            for rel in CORPUS_FILES:
                (corpus / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / "corpus" / rel, corpus / rel)
    index_dir = index_dir or work / "indexes"
    if not (index_dir / "CURRENT").exists():
        print(f"load_chat: building the index of {corpus} in {index_dir} …", file=sys.stderr)
        subprocess.run(legalrag(corpus, index_dir, "index", "build", "-q"), check=True,
                       env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return corpus, index_dir


# ---------------------------------------------------------------- the load


def run_session(client: ChatClient, n: int, questions: list[str], args: argparse.Namespace,
                stop_at: float, out: list[Record]) -> None:
    """One browser session asking its questions in turn, until done or the deadline."""
    session_hash = uuid.uuid4().hex[:11]
    for turn, question in enumerate(questions, 1):
        left = stop_at - time.monotonic()
        if left <= 0:
            break
        record = Record(n, turn, question)
        out.append(record)
        client.ask(record, session_hash, k=args.k, max_tokens=args.max_tokens,
                   timeout=min(args.timeout, left))


def conversations(sessions: int, per_session: int) -> list[list[str]]:
    out = []
    for i in range(sessions):
        script = CONVERSATIONS[i % len(CONVERSATIONS)]
        out.append([script[j % len(script)] for j in range(per_session)])
    return out


def percentiles(values: list[float | None]) -> dict:
    xs = [v for v in values if v is not None]
    if not xs:
        return {"n": 0}
    return {"n": len(xs), "p50": round(float(np.percentile(xs, 50)), 2),
            "p95": round(float(np.percentile(xs, 95)), 2), "max": round(max(xs), 2)}


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


def summarize(records: list[Record], log: list[dict], memory: dict, meta: dict) -> dict:
    answered = [r for r in records if r.outcome == "answered" and not r.error]
    errors = [r for r in records if r.error]
    generated = [e for e in log if e.get("outcome") == "answered"]  # the model ran
    return {
        **meta,
        "asked": len(records), "answered": len(answered),
        "abstained": sum(r.outcome == "abstained" and not r.error for r in records),
        "errors": len(errors),
        "error_details": [f"session {r.session} turn {r.turn}: {r.error}" for r in errors],
        "client": {
            "gradio_queue_wait_s": percentiles([r.gradio_wait for r in records]),
            "sources_s": percentiles([r.sources for r in records]),
            "time_to_first_token_s": percentiles([r.first_token for r in answered]),
            "total_s": percentiles([r.total for r in answered]),
        },
        "server": {
            "model_queue_wait_s": percentiles([e["timings"]["queue_ms"] / 1000
                                               for e in generated]),
            "first_token_s": percentiles([e["timings"]["first_token_ms"] / 1000
                                          for e in generated]),
            "completion_tokens": sum(e["timings"].get("completion_tokens", 0)
                                     for e in generated),
            "logged_questions": len(log),
        },
        "memory": memory,
        "records": [asdict(r) for r in records],
    }


def render(s: dict) -> str:
    c, v, m = s["client"], s["server"], s["memory"]

    def row(name: str, p: dict) -> str:
        if not p.get("n"):
            return f"| {name} | – | – | – | 0 |"
        return f"| {name} | {p['p50']:.2f} | {p['p95']:.2f} | {p['max']:.2f} | {p['n']} |"

    lines = [
        f"{s['sessions']} sessions × {s['questions_per_session']} questions, model "
        f"{s['model']}, answer length {s['max_tokens']} tokens, k = {s['k']}, llama threads "
        f"{s['threads']}; {s['cpus']} CPUs, load average {s['loadavg_before']} before the run; "
        f"{s['wall_s']:.0f} s wall.",
        "",
        f"- questions: {s['asked']} asked, {s['answered']} answered, {s['abstained']} "
        f"abstained, **{s['errors']} errors**",
        f"- throughput: {s['asked'] / s['wall_s'] * 60:.1f} questions/min, "
        f"{v['completion_tokens'] / s['wall_s']:.1f} answer tokens/s overall",
        f"- server memory (RSS): {m.get('rss_after_warmup_mb')} MB after warm-up, peak "
        f"{m.get('rss_peak_mb')} MB during the load (VmHWM {m.get('hwm_mb')} MB), "
        f"{m.get('rss_end_mb')} MB at the end",
        "",
        "| seconds | p50 | p95 | max | n |",
        "|---|---|---|---|---|",
        row("Gradio queue wait (join → handler starts)", c["gradio_queue_wait_s"]),
        row("sources on screen", c["sources_s"]),
        row("time to first token (client)", c["time_to_first_token_s"]),
        row("model queue wait (server log)", v["model_queue_wait_s"]),
        row("first token (server log, from the question)", v["first_token_s"]),
        row("whole answer (client)", c["total_s"]),
    ]
    if s["error_details"]:
        lines += ["", "Errors:", *[f"- {e}" for e in s["error_details"]]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", type=int, default=8)
    p.add_argument("--questions", type=int, default=3, help="questions per session")
    p.add_argument("--max-tokens", type=int, default=256,
                   help="answer length, one of the UI's choices (256, 512, 1024)")
    p.add_argument("--k", type=int, default=5, help="sources per question")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per question")
    p.add_argument("--deadline", type=float, default=1800.0, help="seconds for the whole load")
    p.add_argument("--url", help="a running app on 127.0.0.1 instead of starting one")
    p.add_argument("--pid", type=int, help="with --url: the server's pid, to measure its RSS")
    p.add_argument("--auth", help="user:password when the app has login enabled")
    p.add_argument("--work", type=Path, help="work folder (default: a new temporary one)")
    p.add_argument("--corpus", type=Path, help="corpus to serve (default: a few statutes)")
    p.add_argument("--index-dir", type=Path, help="index to serve (built when missing)")
    p.add_argument("--model", type=Path, help="GGUF to serve (default: SmolLM2-135M)")
    p.add_argument("--threads", type=int, help="llama.cpp threads (default: the app's)")
    p.add_argument("--no-warmup", action="store_true")
    p.add_argument("--out", type=Path, help="write the JSON results here")
    args = p.parse_args(argv)
    if not 1 <= args.sessions <= 64 or not 1 <= args.questions <= 20:
        p.error("use 1-64 sessions and 1-20 questions per session")
    auth = tuple(args.auth.split(":", 1)) if args.auth else None

    server = None
    work = args.work or Path(tempfile.mkdtemp(prefix="legalrag-load-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        if args.url:
            url, pid, model = args.url, args.pid, "(the running app's)"
        else:
            from legalrag.answer.modelfile import smollm2_path

            model_path = args.model or smollm2_path()
            corpus, index_dir = prepare_index(work, args.corpus, args.index_dir)
            server = Server(work, corpus, index_dir, model_path, free_port(), args.threads)
            print(f"load_chat: starting {server.url} (logs in {work}) …", file=sys.stderr)
            server.start(timeout=600)
            url, pid, model = server.url, server.proc.pid, model_path.name
        client = ChatClient(url, auth)  # type: ignore[arg-type]
        memory = Memory(pid) if pid else None
        if not args.no_warmup:  # loads the models; not counted
            warm = client.ask(Record(0, 0, "试用期最长可以约定多久？"), uuid.uuid4().hex[:11],
                              k=args.k, max_tokens=args.max_tokens, timeout=args.timeout)
            print(f"load_chat: warm-up {warm.outcome} in {warm.total or 0:.1f} s "
                  f"{warm.error}", file=sys.stderr)
        log_before = len(server.question_log()) if server else 0
        after_warmup = memory.rss_mb() if memory else None
        if memory:
            memory.start()
        loadavg = " ".join(f"{x:.1f}" for x in os.getloadavg())
        per_session: list[list[Record]] = [[] for _ in range(args.sessions)]
        t0 = time.monotonic()
        stop_at = t0 + args.deadline
        threads = [threading.Thread(target=run_session, daemon=True,
                                    args=(client, i + 1, qs, args, stop_at, per_session[i]))
                   for i, qs in enumerate(conversations(args.sessions, args.questions))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=max(stop_at - time.monotonic(), 0) + 60)
        wall = time.monotonic() - t0
        records = [r for rs in per_session for r in rs]
        for r in records:
            if r.total is None and not r.error:
                r.error = "unfinished at the deadline"
        mem = memory.stop() if memory else {}
        mem["rss_after_warmup_mb"] = _round(after_warmup)
        log = server.question_log()[log_before:] if server else []
        meta = {"sessions": args.sessions, "questions_per_session": args.questions,
                "max_tokens": args.max_tokens, "k": args.k, "model": model,
                "threads": args.threads if args.threads is not None else "app default",
                "cpus": os.cpu_count(), "loadavg_before": loadavg, "wall_s": round(wall, 1),
                "url": url}
        summary = summarize(records, log, mem, meta)
        client.close()
    finally:
        if server is not None:
            server.stop()
    print(render(summary))
    out = args.out or work / "load.json"
    out.write_text(json.dumps(summary, ensure_ascii=False, indent=1), encoding="utf-8")
    print(f"\nload_chat: results in {out}", file=sys.stderr)
    return 1 if summary["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
