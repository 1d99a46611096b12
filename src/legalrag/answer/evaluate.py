"""Measuring answers, not only retrieval: run the assistant over questions with gold
articles and record what a reader would see.

Per question: abstained, a gold article among the sources the model was shown, a gold
article cited with a ✓ (an article citation or an [n] marker whose label is verified),
how many distinct articles the answer cites, the label counts, loops, truncations and
leaked prompt templates, and the times to the sources on screen, to the first model
token and to the end. ``legalrag eval-answers`` writes them as Markdown, JSON and CSV.

    >>> report = run_answer_eval(Assistant(settings), load_queries(path)[:20])  # doctest: +SKIP
    >>> print(render_answer_markdown(report))                                   # doctest: +SKIP
"""

from __future__ import annotations

import csv
import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from legalrag.answer.assistant import (
    LOOP_NOTE,
    TRUNCATED_NOTE,
    Answer,
    Assistant,
    Final,
    Provision,
    Sources,
    Token,
    validate_question,
)
from legalrag.errors import QueryError
from legalrag.records import Article
from legalrag.retrieval.evaluate import EvalQuery, Gold, resolve_gold
from legalrag.vocab import LABEL_NAMES, LABELS, VERIFIED

# Text of the prompt's instructions that must never appear in an answer: a placeholder
# copied instead of a real law name or number.
TEMPLATE_LEAKS = ("《法律名称》", "《法律名》", "法律名称》第", "第X条", "第N条")


@dataclass(frozen=True)
class AnswerResult:
    """One question's answer, as measured."""

    query: EvalQuery
    golds: tuple[Gold, ...]
    abstained: bool
    gold_in_sources: bool
    gold_cited_verified: bool
    cited_articles: int  # distinct articles the answer cites (by 《》第N条 or [n])
    labels: dict[str, int]
    loop: bool
    truncated: bool
    template_leak: bool
    sources_ms: float  # question to sources on screen
    first_token_ms: float | None  # question to the first model token (None: abstained)
    total_ms: float
    answer: Answer = field(repr=False, compare=False)
    gold_quoted: bool = False  # a provision quoted before the model's words is gold
    shown_articles: int = 0  # distinct articles cited by the model or quoted as provisions
    provision_ms: float | None = None  # question to the quoted provision (None: none)
    uncited: int = 0  # sentences that cite nothing, marked 〔未引条文〕 (check.uncited_sentences)
    provisos: int = 0  # ✓ citations shown with the exception their article adds (另有例外)

    @property
    def gold_cited_or_quoted(self) -> bool:
        """A gold article reaches the reader with a ✓ citation: cited by the model with
        a ✓, or quoted verbatim (with its citation) as the answer's provision."""
        return self.gold_cited_verified or self.gold_quoted

    def row(self) -> dict:
        return {
            "id": self.query.id, "query": self.query.query,
            "golds": [g.article for g in self.golds], "abstained": self.abstained,
            "gold_in_sources": self.gold_in_sources,
            "gold_cited_verified": self.gold_cited_verified,
            "cited_articles": self.cited_articles, "labels": self.labels, "loop": self.loop,
            "truncated": self.truncated, "template_leak": self.template_leak,
            "sources_ms": round(self.sources_ms, 1),
            "first_token_ms": None if self.first_token_ms is None
            else round(self.first_token_ms, 1),
            "total_ms": round(self.total_ms, 1),
            "gold_quoted": self.gold_quoted, "shown_articles": self.shown_articles,
            "provision_ms": None if self.provision_ms is None else round(self.provision_ms, 1),
            "uncited": self.uncited, "provisos": self.provisos,
        }


def measure_answer(query: EvalQuery, golds: Sequence[Gold], answer: Answer, sources_ms: float,
                   first_token_ms: float | None, total_ms: float,
                   provision_ms: float | None = None) -> AnswerResult:
    """The measures of one answer against its gold articles (a pure function)."""
    gold_keys = {g.key for g in golds if g.key}
    shown = {_key(s.article) for s in answer.sources}
    cited: set[tuple[str, int, int]] = set()
    verified_gold = False
    for c in answer.citations:
        key = None
        if c.kind == "article" and c.number > 0:
            key = (c.law, c.number, c.suffix)
        elif c.kind == "marker" and c.source and 1 <= c.source <= len(answer.sources):
            key = _key(answer.sources[c.source - 1].article)
        if key is None:
            continue
        cited.add(key)
        if c.label == VERIFIED and key in gold_keys:
            verified_gold = True
    raw = answer.raw_text
    return AnswerResult(
        query=query, golds=tuple(golds), abstained=answer.abstained,
        gold_in_sources=bool(gold_keys & shown), gold_cited_verified=verified_gold,
        cited_articles=len(cited), labels=answer.labels(), loop=LOOP_NOTE in answer.notes,
        truncated=TRUNCATED_NOTE in answer.notes,
        template_leak=any(t in raw for t in TEMPLATE_LEAKS),
        sources_ms=sources_ms, first_token_ms=first_token_ms, total_ms=total_ms,
        answer=answer, provision_ms=provision_ms,
        gold_quoted=any(_key(p.article) in gold_keys for p in answer.provisions),
        shown_articles=len(cited | {_key(p.article) for p in answer.provisions}),
        uncited=len(answer.uncited),
        provisos=sum(1 for c in answer.citations if c.label == VERIFIED and c.proviso))


def _key(a: Article) -> tuple[str, int, int]:
    return (a.law, a.number, a.suffix)


def ask_timed(assistant: Assistant, question: str
              ) -> tuple[Answer, float, float | None, float, float | None]:
    """The answer and the wall-clock milliseconds to sources, first token, end and the
    quoted provision (None without one)."""
    t0 = time.perf_counter()
    sources_ms, first, answer, quoted = 0.0, None, None, None
    for event in assistant.stream(question):
        now = (time.perf_counter() - t0) * 1000
        if isinstance(event, Sources):
            sources_ms = now
        elif isinstance(event, Provision):
            quoted = now
        elif isinstance(event, Token) and first is None:
            first = now
        elif isinstance(event, Final):
            answer = event.answer
    assert answer is not None  # stream always ends with Final
    return answer, sources_ms, first, (time.perf_counter() - t0) * 1000, quoted


@dataclass(frozen=True)
class AnswerReport:
    results: tuple[AnswerResult, ...]
    model: str
    source: str = ""
    settings: dict = field(default_factory=dict)

    def summary(self) -> dict:
        """Aggregates over all questions (rates as fractions, times in ms)."""
        rs = self.results
        n = len(rs)
        if not n:
            return {"questions": 0}
        answered = [r for r in rs if not r.abstained]
        firsts = sorted(r.first_token_ms for r in answered if r.first_token_ms is not None)
        totals = sorted(r.total_ms for r in answered)
        quotes = sorted(r.provision_ms for r in answered if r.provision_ms is not None)
        labels = {label: sum(r.labels.get(label, 0) for r in rs) for label in LABELS}
        labels.update({k: sum(r.labels.get(k, 0) for r in rs)
                       for r0 in rs for k in r0.labels if k not in labels})
        return {
            "questions": n,
            "abstained": sum(r.abstained for r in rs) / n,
            "gold_in_sources": sum(r.gold_in_sources for r in rs) / n,
            "gold_cited_verified": sum(r.gold_cited_verified for r in rs) / n,
            "gold_quoted": sum(r.gold_quoted for r in rs) / n,
            "gold_cited_or_quoted": sum(r.gold_cited_or_quoted for r in rs) / n,
            "cited_articles_mean": (statistics.fmean(r.cited_articles for r in answered)
                                    if answered else 0.0),
            "shown_articles_mean": (statistics.fmean(r.shown_articles for r in answered)
                                    if answered else 0.0),
            "no_verified_citation": (sum(not r.labels.get(VERIFIED) for r in answered) / n),
            "with_uncited": sum(r.uncited > 0 for r in answered) / n,
            "uncited_sentences": sum(r.uncited for r in answered),
            "provisos": sum(r.provisos for r in answered),
            "loops": sum(r.loop for r in rs) / n,
            "truncated": sum(r.truncated for r in rs) / n,
            "template_leaks": sum(r.template_leak for r in rs),
            "labels": labels,
            "sources_ms_median": statistics.median(r.sources_ms for r in rs),
            "provision_ms_median": statistics.median(quotes) if quotes else None,
            "provision_ms_max": quotes[-1] if quotes else None,
            "total_ms_p95": _p95(totals),
            "first_token_ms_median": statistics.median(firsts) if firsts else None,
            "first_token_ms_p95": _p95(firsts),
            "total_ms_median": statistics.median(totals) if totals else None,
        }

    def to_dict(self) -> dict:
        return {"source": self.source, "model": self.model, "settings": self.settings,
                "summary": self.summary(), "questions": [r.row() for r in self.results]}


def _p95(values: Sequence[float]) -> float | None:
    if not values:
        return None
    return sorted(values)[min(len(values) - 1, round(0.95 * (len(values) - 1)))]


def run_answer_eval(assistant: Assistant, queries: Sequence[EvalQuery], *,
                    progress: Callable[[int], None] | None = None, source: str = "",
                    settings: dict | None = None) -> AnswerReport:
    """Ask every question once (no history) and measure each answer.

    The models are loaded and the shared prompt prefix read first (Assistant.warm_up, as
    a UI does at start-up), so the first question is timed like every other."""
    unusable = []  # found now, not an hour into the run
    for q in queries:
        try:
            validate_question(q.query, assistant.settings.max_question_chars)
        except QueryError as e:
            unusable.append(f"{q.id}{f' (line {q.line})' if q.line else ''}: {e.message}")
    if unusable:
        raise QueryError(f"{len(unusable)} question(s) cannot be asked: "
                         + "; ".join(unusable[:5]) + ("; …" if len(unusable) > 5 else ""),
                         fix="correct them in the query file or leave them out")
    results = []
    model = ""
    if queries:
        assistant.warm_up()
    for q in queries:
        retriever = assistant.retriever
        golds = [resolve_gold(c, retriever) for c in q.relevant]
        answer, sources_ms, first, total, quoted = ask_timed(assistant, q.query)
        model = answer.model or model
        results.append(measure_answer(q, golds, answer, sources_ms, first, total, quoted))
        if progress is not None:
            progress(1)
    return AnswerReport(tuple(results), model, source, settings or {})


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _s(ms: float | None) -> str:
    if ms is None:
        return "–"
    return f"{ms:.0f} ms" if ms < 1000 else f"{ms / 1000:.1f} s"


def render_answer_markdown(report: AnswerReport) -> str:
    """The aggregate table, then the label counts."""
    s = report.summary()
    if not s["questions"]:
        return "No questions.\n"
    lines = [
        f"Answers of `{report.model}` to {s['questions']} questions"
        + (f" of `{report.source}`" if report.source else "") + ".",
        "",
        "| measure | value |",
        "|---|---|",
        f"| abstained | {_pct(s['abstained'])} |",
        f"| gold article among the sources shown | {_pct(s['gold_in_sources'])} |",
        f"| gold article cited with ✓ by the model | {_pct(s['gold_cited_verified'])} |",
        f"| gold article quoted as the provision | {_pct(s['gold_quoted'])} |",
        f"| gold article cited with ✓ or quoted | {_pct(s['gold_cited_or_quoted'])} |",
        f"| answered without any ✓ citation | {_pct(s['no_verified_citation'])} |",
        f"| answers with sentences marked 未引条文 (sentences) | {_pct(s['with_uncited'])} "
        f"({s['uncited_sentences']}) |",
        f"| ✓ citations shown with the exception their article adds (另有例外) | "
        f"{s['provisos']} |",
        f"| distinct articles cited by the model (mean, answered) | "
        f"{s['cited_articles_mean']:.2f} |",
        f"| distinct articles cited or quoted (mean, answered) | "
        f"{s['shown_articles_mean']:.2f} |",
        f"| loops stopped | {_pct(s['loops'])} |",
        f"| truncated at the length limit | {_pct(s['truncated'])} |",
        f"| leaked prompt templates | {s['template_leaks']} |",
        f"| sources on screen (median) | {_s(s['sources_ms_median'])} |",
        f"| quoted provision on screen (median / max) | {_s(s['provision_ms_median'])} / "
        f"{_s(s['provision_ms_max'])} |",
        f"| first model token (median / p95) | {_s(s['first_token_ms_median'])} / "
        f"{_s(s['first_token_ms_p95'])} |",
        f"| answer complete (median / p95) | {_s(s['total_ms_median'])} / "
        f"{_s(s['total_ms_p95'])} |",
        "",
        "| label | citations |",
        "|---|---|",
    ]
    for label, count in s["labels"].items():
        lines.append(f"| {LABEL_NAMES.get(label, label)} (`{label}`) | {count} |")
    return "\n".join(lines) + "\n"


def write_answer_report(report: AnswerReport, out_dir: Path) -> list[Path]:
    """answers.json (everything, the answers' text and citations included), answers.md and
    per_question.csv into out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    js, md = out_dir / "answers.json", out_dir / "answers.md"
    csv_path = out_dir / "per_question.csv"
    data = report.to_dict()
    for row, r in zip(data["questions"], report.results, strict=True):
        row["answer"] = r.answer.to_dict()
    js.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    md.write_text(render_answer_markdown(report), encoding="utf-8")
    with csv_path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        cols = ["id", "query", "golds", "abstained", "gold_in_sources", "gold_cited_verified",
                "cited_articles", "labels", "loop", "truncated", "template_leak",
                "sources_ms", "first_token_ms", "total_ms", "gold_quoted", "shown_articles",
                "provision_ms", "uncited", "provisos"]
        w.writerow(cols)
        for r in report.results:
            row = r.row()
            row["golds"] = " ".join(row["golds"])
            row["labels"] = json.dumps(row["labels"], ensure_ascii=False, sort_keys=True)
            w.writerow([row[c] for c in cols])
    return [js, md, csv_path]
