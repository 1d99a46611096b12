"""Conversations kept on the server: one SQLite file, per user, reopened as they were.

Gradio-free. ``History.record`` wraps the chat's stream of views and writes the exchange
as it goes: when the question is asked, when its sources arrive, every few seconds while
the answer is written, and when it ends (answered, stopped, failed). Each write is one
transaction holding the whole exchange, so a server killed mid-answer leaves the question,
its sources and the answer so far; reopened, that exchange shows as stopped.

    >>> history = History(Path("userdata/history.sqlite3"))          # doctest: +SKIP
    >>> for view in history.record("browser:4f…", session, chat.respond(session, q)):
    ...     show(view)                                                 # doctest: +SKIP
    >>> [c.title for c in history.conversations("browser:4f…")]      # doctest: +SKIP
    >>> session = history.load("browser:4f…", conversation_id)        # doctest: +SKIP

Who owns a conversation: the login name when login is on (``user:anna``), else a random
id the browser keeps in its local storage (``browser:…``, never a fingerprint). Every
read and delete is scoped to the owner.

WAL mode and a busy timeout let several tabs, and several server processes on one file,
write at once. Feedback on an answer (feedback.py) is stored beside its exchange and goes
when the conversation is deleted.
"""

from __future__ import annotations

import json
import re
import secrets
import sqlite3
import threading
import time
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any

from legalrag.errors import ConfigError
from legalrag.web.chat import ChatView
from legalrag.web.session import ChatSession, Exchange

HISTORY_FILE = "history.sqlite3"
SAVE_EVERY = 2.0  # seconds between writes while an answer is being written
BUSY_SECONDS = 10.0  # how long a write waits for another writer of the file
MAX_LISTED = 200
_OWNER_RE = re.compile(r"^(user:.{1,200}|browser:[0-9a-f]{32})$", re.S)
_BROWSER_RE = re.compile(r"^[0-9a-f]{32}$")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, title TEXT NOT NULL,
    created REAL NOT NULL, updated REAL NOT NULL);
CREATE INDEX IF NOT EXISTS conversations_owner ON conversations (owner, updated);
CREATE TABLE IF NOT EXISTS exchanges (
    conversation TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    n INTEGER NOT NULL, record TEXT NOT NULL, updated REAL NOT NULL,
    PRIMARY KEY (conversation, n));
CREATE TABLE IF NOT EXISTS feedback (
    conversation TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    n INTEGER NOT NULL, rating INTEGER NOT NULL DEFAULT 0, comment TEXT NOT NULL DEFAULT '',
    sources TEXT NOT NULL DEFAULT '{}', updated REAL NOT NULL,
    PRIMARY KEY (conversation, n));
"""


@dataclass(frozen=True)
class Conversation:
    """One line of the history list."""

    id: str
    title: str  # the first question
    created: float
    updated: float
    questions: int

    @property
    def label(self) -> str:
        title = self.title if len(self.title) <= 28 else self.title[:28] + "…"
        return f"{title} · {time.strftime('%Y-%m-%d %H:%M', time.localtime(self.created))}"


def owner_of(username: str | None, browser_id: object) -> str:
    """The owner key: the login name, else the browser's own random id ("" if it has none
    yet, or sent something that is not one)."""
    if username:
        return f"user:{username}"
    if isinstance(browser_id, str) and _BROWSER_RE.match(browser_id):
        return f"browser:{browser_id}"
    return ""


def new_browser_id() -> str:
    return secrets.token_hex(16)


def _set_wal(conn: sqlite3.Connection, wait: float = BUSY_SECONDS) -> None:
    """Switch the file to WAL, waiting out another connection doing the same.

    SQLite answers a journal-mode change that races another one with "database is
    locked" at once, without calling the busy handler, so two tabs or two processes
    opening a new file together would fail one of them. Retry until ``wait`` is spent.
    """
    deadline = time.monotonic() + wait
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


class History:
    """The conversation store: one SQLite file (created on first use)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    @classmethod
    def for_settings(cls, settings) -> History:
        return cls(Path(settings.data_dir) / HISTORY_FILE)

    # -- the connection ------------------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.path, timeout=BUSY_SECONDS, check_same_thread=False,
                                       isolation_level=None)
                _set_wal(conn)
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("PRAGMA foreign_keys=ON")
                conn.executescript(SCHEMA)
            except (OSError, sqlite3.Error) as e:
                raise ConfigError(f"对话记录文件 {self.path} 无法打开：{e}",
                                  fix="检查 data_dir 设置指向一个可写的文件夹") from None
            self._conn = conn
        return self._conn

    def _write(self, statements: list[tuple[str, tuple]]) -> None:
        """Run statements in one transaction (all or nothing)."""
        with self._lock:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            try:
                for sql, args in statements:
                    db.execute(sql, args)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _read(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db().execute(sql, args).fetchall()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def secret(self) -> str:
        """A random key made once per file: what the browser's stored id is sealed with
        (it must outlive a restart, or every browser would lose its history)."""
        rows = self._read("SELECT value FROM meta WHERE key = 'browser_secret'")
        if rows:
            return rows[0][0]
        self._write([("INSERT OR IGNORE INTO meta (key, value) VALUES ('browser_secret', ?)",
                      (secrets.token_urlsafe(24),))])
        return self._read("SELECT value FROM meta WHERE key = 'browser_secret'")[0][0]

    # -- writing ---------------------------------------------------------------------------

    def save(self, owner: str, session: ChatSession, ex: Exchange) -> None:
        """Write one exchange of session (and the conversation it belongs to) at once."""
        if not _OWNER_RE.match(owner):
            raise ValueError(f"not an owner key: {owner!r}")
        now = time.time()
        title = session.exchanges[0].question.strip() if session.exchanges else ""
        record = json.dumps(exchange_to_dict(ex), ensure_ascii=False)
        self._write([
            ("INSERT INTO conversations (id, owner, title, created, updated) "
             "VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET updated = excluded.updated "
             "WHERE conversations.owner = excluded.owner",
             (session.id, owner, title or "（空问题）", now, now)),
            ("INSERT INTO exchanges (conversation, n, record, updated) "
             "SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM conversations "
             "WHERE id = ? AND owner = ?) "
             "ON CONFLICT (conversation, n) DO UPDATE SET record = excluded.record, "
             "updated = excluded.updated",
             (session.id, ex.n, record, now, session.id, owner)),
        ])

    def record(self, owner: str, session: ChatSession, views: Iterator[ChatView]
               ) -> Iterator[ChatView]:
        """views, passed through, with the newest exchange of session saved as it goes.
        owner "": nothing is saved (no browser id yet)."""
        if not owner:
            yield from views
            return
        saved_state, saved_at = None, 0.0
        ex: Exchange | None = None
        try:
            for view in views:
                ex = session.exchanges[-1] if session.exchanges else None
                if ex is not None:
                    now = time.monotonic()
                    changed = (ex.state, len(ex.hits)) != saved_state
                    if changed or (ex.state == "writing" and now - saved_at >= SAVE_EVERY):
                        self.save(owner, session, ex)
                        saved_state, saved_at = (ex.state, len(ex.hits)), now
                yield view
        finally:
            close = getattr(views, "close", None)
            if close is not None:
                close()  # the chat marks the exchange stopped when it was cut short
            if ex is not None:  # the end as it is: answered, stopped or failed
                self.save(owner, session, ex)

    # -- reading and deleting -----------------------------------------------------------

    def conversations(self, owner: str) -> list[Conversation]:
        """The owner's conversations, the most recent first."""
        rows = self._read(
            "SELECT c.id, c.title, c.created, c.updated, COUNT(e.n) FROM conversations c "
            "LEFT JOIN exchanges e ON e.conversation = c.id WHERE c.owner = ? "
            "GROUP BY c.id ORDER BY c.updated DESC LIMIT ?", (owner, MAX_LISTED))
        return [Conversation(*r) for r in rows]

    def load(self, owner: str, conversation: str) -> ChatSession | None:
        """The conversation as a session to show and continue, or None if the owner has
        no such conversation. An exchange that never finished (the server stopped
        mid-answer) comes back stopped, with what had been written."""
        owned = self._read("SELECT 1 FROM conversations WHERE id = ? AND owner = ?",
                           (conversation, owner))
        if not owned:
            return None
        rows = self._read("SELECT record FROM exchanges WHERE conversation = ? ORDER BY n",
                          (conversation,))
        exchanges = [exchange_from_dict(json.loads(r[0])) for r in rows]
        for ex in exchanges:
            if not ex.finished:
                ex.state = "stopped"
        return ChatSession(exchanges=exchanges, id=conversation)

    def feedback(self, owner: str, conversation: str) -> dict[int, Feedback]:
        """The feedback on each answer of the owner's conversation, by answer number."""
        rows = self._read(
            "SELECT f.n, f.rating, f.comment, f.sources FROM feedback f JOIN conversations c "
            "ON c.id = f.conversation WHERE c.id = ? AND c.owner = ?", (conversation, owner))
        out = {}
        for n, rating, comment, marks in rows:
            m = json.loads(marks)
            out[n] = Feedback(rating, comment, tuple(m.get("right", ())),
                              tuple(m.get("irrelevant", ())))
        return out

    def delete(self, owner: str, conversation: str) -> bool:
        before = self._read("SELECT COUNT(*) FROM conversations WHERE owner = ?", (owner,))
        self._write([("DELETE FROM conversations WHERE id = ? AND owner = ?",
                      (conversation, owner))])
        after = self._read("SELECT COUNT(*) FROM conversations WHERE owner = ?", (owner,))
        return after[0][0] < before[0][0]

    def delete_all(self, owner: str) -> int:
        n = self._read("SELECT COUNT(*) FROM conversations WHERE owner = ?", (owner,))[0][0]
        self._write([("DELETE FROM conversations WHERE owner = ?", (owner,))])
        return n


# ---------------------------------------------------------------- feedback

RATINGS = (-1, 0, 1)  # 👎, none, 👍
MAX_COMMENT = 2000


@dataclass(frozen=True)
class Feedback:
    """What a user said about one answer: a rating, a comment, and per source number
    whether it is the right article or not relevant."""

    rating: int = 0
    comment: str = ""
    right: tuple[int, ...] = ()
    irrelevant: tuple[int, ...] = ()


def give_feedback(history: History, owner: str, conversation: str, n: int, *,
                  rating: int | None = None, comment: str | None = None,
                  right: list[int] | None = None, irrelevant: list[int] | None = None
                  ) -> Feedback:
    """Change the feedback on answer n of a conversation (only what is given) and return
    it. ValueError names what is wrong; nothing is written then."""
    if rating is not None and rating not in RATINGS:
        raise ValueError(f"评价只能是 -1、0 或 1，收到 {rating!r}")
    if comment is not None and len(comment) > MAX_COMMENT:
        raise ValueError(f"意见太长（{len(comment)} 字，上限 {MAX_COMMENT} 字）")
    old = history.feedback(owner, conversation).get(n)
    if old is None and not history._read(
            "SELECT 1 FROM exchanges e JOIN conversations c ON c.id = e.conversation "
            "WHERE c.id = ? AND c.owner = ? AND e.n = ?", (conversation, owner, n)):
        raise ValueError("没有这个回答（对话可能已被删除）")
    old = old or Feedback()
    right_ = tuple(sorted(set(right))) if right is not None else old.right
    irrelevant_ = tuple(sorted(set(irrelevant) - set(right_))) if irrelevant is not None \
        else tuple(i for i in old.irrelevant if i not in right_)
    new = Feedback(old.rating if rating is None else rating,
                   old.comment if comment is None else comment.strip(), right_, irrelevant_)
    history._write([(
        "INSERT INTO feedback (conversation, n, rating, comment, sources, updated) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (conversation, n) DO UPDATE SET "
        "rating = excluded.rating, comment = excluded.comment, sources = excluded.sources, "
        "updated = excluded.updated",
        (conversation, n, new.rating, new.comment,
         json.dumps({"right": new.right, "irrelevant": new.irrelevant}), time.time()))])
    return new


def eval_records(history: History) -> list[dict]:
    """Every answer whose user marked at least one source right, as a line of the query
    files `legalrag eval` reads: id, query (the standalone query retrieval used), relevant
    (the marked articles, cited by full title), plus what else was said."""
    rows = history._read(
        "SELECT f.conversation, f.n, f.rating, f.comment, f.sources, e.record "
        "FROM feedback f JOIN exchanges e ON e.conversation = f.conversation AND e.n = f.n "
        "ORDER BY f.updated")
    out = []
    for cid, n, rating, comment, marks, record in rows:
        marks = json.loads(marks)
        ex = exchange_from_dict(json.loads(record))
        by_rank = {h.rank: h.article for h in ex.hits}
        cite = [f"《{a.law_title}》{a.label}" for i in marks.get("right", ())
                if (a := by_rank.get(i)) is not None]
        if not cite:
            continue
        wrong = [f"《{a.law_title}》{a.label}" for i in marks.get("irrelevant", ())
                 if (a := by_rank.get(i)) is not None]
        out.append({"id": f"feedback-{cid}-{n}", "query": ex.rewritten or ex.question,
                    "relevant": cite, "not_relevant": wrong, "rating": rating,
                    "comment": comment, "question": ex.question})
    return out


def export_items(session: ChatSession) -> list:
    """The session's exchanges for answer/export.py: answered ones with their Answer, the
    others with what became of them."""
    from legalrag.answer.assistant import quote_provision
    from legalrag.answer.export import Exported

    notes = {"stopped": "回答被停止或中断", "error": "出错"}

    def partial(ex: Exchange) -> str:
        """What a stopped answer had shown: its quoted provisions and the words so far."""
        quotes = [quote_provision(p, i == 0) for i, p in enumerate(ex.provisions)]
        return "\n\n".join([*quotes, ex.text.strip()]).strip()

    return [Exported(ex.question, ex.answer if ex.state == "done" else None,
                     notes.get(ex.state, "回答没有完成") + (f"：{ex.error}" if ex.error else ""),
                     partial(ex) if ex.state == "stopped" else "")
            for ex in session.exchanges]


def export_file(session: ChatSession, fmt: str, folder: Path) -> Path:
    """The session as a .md or .docx file in folder, named after its first question."""
    from legalrag.answer.export import write

    first = session.exchanges[0].question.strip() if session.exchanges else "对话"
    stem = re.sub(r'[\\/:*?"<>|\s]+', "_", first)[:24].strip("_") or "对话"
    return write(export_items(session), Path(folder) / f"legalrag_{stem}.{fmt}", fmt)


# ---------------------------------------------------------------- the records as JSON


def exchange_to_dict(ex: Exchange) -> dict:
    return {"n": ex.n, "question": ex.question, "state": ex.state, "rewritten": ex.rewritten,
            "hits": encode(ex.hits), "text": ex.text, "answer": encode(ex.answer),
            "error": ex.error, "dense_live": ex.dense_live, "premise": list(ex.premise)}


def exchange_from_dict(d: dict) -> Exchange:
    from legalrag.answer.assistant import Answer
    from legalrag.records import Hit

    return Exchange(d["n"], d["question"], state=d["state"], rewritten=d.get("rewritten", ""),
                    hits=decode(tuple[Hit, ...], d.get("hits") or []), text=d.get("text", ""),
                    answer=decode(Answer | None, d.get("answer")), error=d.get("error", ""),
                    dense_live=d.get("dense_live", True),
                    premise=tuple(d.get("premise") or ()))


def encode(obj: Any) -> Any:
    """A record (frozen dataclasses all the way down) as plain JSON values."""
    if is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: encode(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, list | tuple):
        return [encode(x) for x in obj]
    if isinstance(obj, dict):
        return {str(k): encode(v) for k, v in obj.items()}
    return obj


def decode(tp: Any, value: Any) -> Any:
    """The inverse of encode, led by the type annotations of the records. Fields a newer
    version added are left at their defaults; fields it dropped are ignored."""
    if value is None:
        return None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        return decode(options[0], value) if len(options) == 1 else value
    if isinstance(tp, type) and is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        kwargs = {f.name: decode(hints[f.name], value[f.name]) for f in fields(tp)
                  if f.init and f.name in value}
        return tp(**kwargs)
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(decode(args[0], v) for v in value)
        return tuple(decode(a, v) for a, v in zip(args, value, strict=False))
    if origin is list:
        return [decode(typing.get_args(tp)[0], v) for v in value]
    if origin is dict:
        _, vt = typing.get_args(tp)
        return {k: decode(vt, v) for k, v in value.items()}
    if tp is float and isinstance(value, int):
        return float(value)
    return value
