"""Retrieval evaluation: how often does retrieval put the right statute article on top?

A query set is JSON Lines, one object per line (the format of data/eval/README.md)::

    {"id": "stard-0", "query": "谁可以成为个体工商户？",
     "relevant": ["《中华人民共和国民法典》第五十四条"]}

Gold citations are resolved with the product's own citation parser against the index's law
names. A gold that does not resolve stays in the run as a miss and is listed in the report.
A retrieved article matches a gold when its law (any version) and article number match.

    >>> retriever = Retriever.open(Settings.load())                  # doctest: +SKIP
    >>> queries = load_queries(Path("data/eval/stard_train.jsonl"))  # doctest: +SKIP
    >>> report = run_eval(retriever, queries, modes=("bm25", "hybrid"), ks=(1, 10, 100))
    ... # doctest: +SKIP
    >>> report.aggregate["hybrid"]["recall@10"]                      # doctest: +SKIP
    0.61

The metric functions are pure and work on *gold ranks*: for each gold article of a query,
its 1-based rank in the result list, or None when it was not retrieved.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from legalrag.citations import LawNames, find_citations
from legalrag.errors import InputFileError, LegalRagError
from legalrag.numerals import article_label
from legalrag.records import Article, Hit
from legalrag.vocab import MODES

log = logging.getLogger(__name__)

DEFAULT_KS = (1, 3, 5, 10, 20, 100)
RANK_CUTOFF = 10  # MRR and nDCG are reported at 10, whatever ks were asked for
NOT_FOUND = "not found"
Progress = Callable[[int], None]
Ranks = Sequence[int | None]


class EvalError(LegalRagError):
    """An evaluation was asked for with arguments it cannot honour (mode, k, bound)."""


class EvalInputError(EvalError, InputFileError):
    """A query file cannot be used; names the file, the line and the reason."""


class SearchBackend(Protocol):
    """What evaluation needs from a retriever (retrieval.retriever.Retriever provides it)."""

    names: LawNames
    parts: set[str]  # index parts that are live: "bm25", "dense"

    def search(self, query: str, k: int = 10, mode: str = "hybrid",
               include_old: bool = False) -> list[Hit]: ...

    def lookup(self, law: str, number: int, suffix: int = 0) -> list[Article]: ...


# ---------------------------------------------------------------------------------------
# Metrics: pure functions over the gold ranks of one query.


def hit_at(ranks: Ranks, k: int) -> float:
    """1.0 when at least one gold article is in the top k, else 0.0.

    >>> hit_at([None, 4], 3), hit_at([None, 4], 5)
    (0.0, 1.0)
    """
    _check(ranks)
    return 1.0 if any(r is not None and r <= k for r in ranks) else 0.0


def recall_at(ranks: Ranks, k: int) -> float:
    """Share of the gold articles found in the top k.

    >>> recall_at([1, None, 7], 5)
    0.3333333333333333
    """
    _check(ranks)
    return sum(1 for r in ranks if r is not None and r <= k) / len(ranks)


def reciprocal_rank(ranks: Ranks, k: int = RANK_CUTOFF) -> float:
    """1 / rank of the best-ranked gold article, 0.0 when none is in the top k.

    >>> reciprocal_rank([None, 4, 2])
    0.5
    """
    _check(ranks)
    best = min((r for r in ranks if r is not None and r <= k), default=None)
    return 0.0 if best is None else 1.0 / best


def ndcg_at(ranks: Ranks, k: int = RANK_CUTOFF) -> float:
    """nDCG@k with binary relevance: every gold article has gain 1, discounted by
    log2(rank + 1); the ideal list puts all golds (up to k) on top. Golds that were never
    retrieved still count in the ideal list, so they lower the score.

    >>> round(ndcg_at([1, None]), 4)   # 1 / (1 + 1/log2(3))
    0.6131
    """
    _check(ranks)
    dcg = sum(1.0 / math.log2(r + 1) for r in ranks if r is not None and r <= k)
    ideal = sum(1.0 / math.log2(i + 1) for i in range(1, min(len(ranks), k) + 1))
    return dcg / ideal


def query_metrics(ranks: Ranks, ks: Iterable[int]) -> dict[str, float]:
    """Every reported metric for one query: hit@k and recall@k for each k, mrr@10, ndcg@10.

    >>> query_metrics([2], [1, 3])  # doctest: +NORMALIZE_WHITESPACE
    {'hit@1': 0.0, 'hit@3': 1.0, 'recall@1': 0.0, 'recall@3': 1.0,
     'mrr@10': 0.5, 'ndcg@10': 0.6309297535714575}
    """
    ks = sorted(set(ks))
    out = {f"hit@{k}": hit_at(ranks, k) for k in ks}
    out.update({f"recall@{k}": recall_at(ranks, k) for k in ks})
    out[f"mrr@{RANK_CUTOFF}"] = reciprocal_rank(ranks, RANK_CUTOFF)
    out[f"ndcg@{RANK_CUTOFF}"] = ndcg_at(ranks, RANK_CUTOFF)
    return out


def mean_metrics(per_query: Sequence[dict[str, float]]) -> dict[str, float]:
    """The macro average over queries of each metric (every query weighs the same).

    >>> mean_metrics([{"hit@1": 1.0}, {"hit@1": 0.0}])
    {'hit@1': 0.5}
    """
    if not per_query:
        return {}
    return {name: sum(m[name] for m in per_query) / len(per_query) for name in per_query[0]}


def metric_names(ks: Iterable[int]) -> list[str]:
    """The metric keys run_eval reports for these ks, in display order."""
    return list(query_metrics([1], ks))


def _check(ranks: Ranks) -> None:
    if not ranks:
        raise ValueError("a query needs at least one gold article")
    found = [r for r in ranks if r is not None]
    if any(r < 1 for r in found) or len(set(found)) != len(found):
        raise ValueError(f"gold ranks must be distinct and >= 1, got {list(ranks)}")


# ---------------------------------------------------------------------------------------
# Queries and gold citations


@dataclass(frozen=True, slots=True)
class EvalQuery:
    """One line of a query file."""

    id: str
    query: str
    relevant: tuple[str, ...]  # gold citations as written: 《中华人民共和国民法典》第五十四条
    source: str = ""  # the file it came from, for error messages
    line: int = 0


@dataclass(frozen=True, slots=True)
class Gold:
    """A gold citation and the article it names in the corpus, or why it names none."""

    citation: str  # as written in the query file
    law: str | None = None  # the corpus key of the law
    number: int = 0
    suffix: int = 0
    problem: str = ""  # empty when resolved
    in_force: bool = True  # an in-force version has this article (False: only old versions)

    @property
    def resolved(self) -> bool:
        return self.law is not None and not self.problem

    @property
    def key(self) -> tuple[str, int, int] | None:
        return (self.law, self.number, self.suffix) if self.resolved and self.law else None

    @property
    def article(self) -> str:
        """《law》第N条 for a resolved gold, else the citation as written."""
        if not self.key:
            return self.citation
        return f"《{self.law}》{article_label(self.number, self.suffix)}"


def load_queries(path: Path) -> list[EvalQuery]:
    """Read and validate a JSONL query file; raises EvalInputError naming file and line.

    Blank lines are skipped. Each object needs a unique non-empty string "id", a non-empty
    string "query" and a non-empty list of citation strings "relevant".
    """
    src = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise EvalInputError(src, 0, "no such file") from None
    except UnicodeDecodeError as e:
        raise EvalInputError(src, 0, f"not UTF-8 ({e.reason} at byte {e.start})",
                             fix="re-save the file as UTF-8") from None
    except OSError as e:
        raise EvalInputError(src, 0, f"cannot read: {e.strerror}") from None
    out: list[EvalQuery] = []
    seen: dict[str, int] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise EvalInputError(src, n, f"not valid JSON: {e.msg} (column {e.colno})") from None
        out.append(_query_from(obj, src, n))
        qid = out[-1].id
        if qid in seen:
            raise EvalInputError(src, n, f"id {qid!r} already used on line {seen[qid]}")
        seen[qid] = n
    if not out:
        raise EvalInputError(src, 0, "no queries in the file")
    return out


def _query_from(obj: object, src: str, n: int) -> EvalQuery:
    if not isinstance(obj, dict):
        raise EvalInputError(src, n, f"expected a JSON object, got {type(obj).__name__}")
    missing = [k for k in ("id", "query", "relevant") if k not in obj]
    if missing:
        raise EvalInputError(src, n, f"missing field(s): {', '.join(missing)}",
                             fix='each line needs "id", "query" and "relevant"')
    qid, query, relevant = obj["id"], obj["query"], obj["relevant"]
    if not isinstance(qid, str | int) or isinstance(qid, bool) or not str(qid).strip():
        raise EvalInputError(src, n, f'"id" must be a non-empty string or integer, got {qid!r}')
    if not isinstance(query, str) or not query.strip():
        raise EvalInputError(src, n, f'"query" must be a non-empty string, got {query!r}')
    if (not isinstance(relevant, list) or not relevant
            or not all(isinstance(c, str) and c.strip() for c in relevant)):
        raise EvalInputError(src, n, '"relevant" must be a non-empty list of citation strings, '
                             f"got {relevant!r}")
    return EvalQuery(str(qid), query.strip(), tuple(c.strip() for c in relevant), src, n)


def resolve_gold(citation: str, backend: SearchBackend) -> Gold:
    """Resolve one gold citation with the product's parser, the index's law names and an
    exact lookup of the article in any version."""
    refs = find_citations(citation)
    if len(refs) != 1:
        why = "no citation the parser can read" if not refs else f"{len(refs)} citations"
        return Gold(citation, problem=f"{why}; write one 《law》第N条 per entry")
    ref = refs[0]
    law = backend.names.resolve(ref.law)
    if law is None:
        return Gold(citation, number=ref.number, suffix=ref.suffix,
                    problem=f"unknown law {ref.law!r}")
    found = backend.lookup(law, ref.number, ref.suffix)
    if not found:
        label = article_label(ref.number, ref.suffix)
        return Gold(citation, law, ref.number, ref.suffix,
                    problem=f"《{law}》{label} is in no version of the law")
    return Gold(citation, law, ref.number, ref.suffix, in_force=any(a.in_force for a in found))


def gold_ranks(hits: Sequence[Hit], golds: Sequence[Gold]) -> tuple[int | None, ...]:
    """The 1-based position of each gold's first match in hits (any version), or None.

    Unresolved golds are never found. Positions come from the list order, not Hit.rank.
    """
    first: dict[tuple[str, int, int], int] = {}
    for pos, h in enumerate(hits, 1):
        first.setdefault((h.article.law, h.article.number, h.article.suffix), pos)
    return tuple(first.get(g.key) if g.key else None for g in golds)


# ---------------------------------------------------------------------------------------
# Running


@dataclass(frozen=True)
class QueryResult:
    """One query's golds, and per mode the rank of each gold and the query's metrics."""

    query: EvalQuery
    golds: tuple[Gold, ...]
    ranks: dict[str, tuple[int | None, ...]] = field(default_factory=dict)  # mode -> ranks
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # mode -> name -> value


@dataclass(frozen=True)
class EvalReport:
    """Everything one run measured; aggregate[mode][metric] holds the headline numbers."""

    source: str
    modes: tuple[str, ...]
    ks: tuple[int, ...]
    depth: int
    include_old: bool
    results: tuple[QueryResult, ...]
    aggregate: dict[str, dict[str, float]]
    seconds: dict[str, float]  # mode -> wall time of its searches
    cross_references: bool | None = None  # the backend's setting, None when it has none
    query_glossary: bool | None = None  # the same, for the glossary of everyday words

    @property
    def golds(self) -> int:
        return sum(len(r.golds) for r in self.results)

    @property
    def unresolved(self) -> list[tuple[str, Gold]]:
        """(query id, gold) for every gold that names no corpus article."""
        return [(r.query.id, g) for r in self.results for g in r.golds if not g.resolved]

    @property
    def old_only(self) -> list[tuple[str, Gold]]:
        """(query id, gold) for resolved golds that exist only in old versions."""
        return [(r.query.id, g) for r in self.results for g in r.golds
                if g.resolved and not g.in_force]

    def to_dict(self) -> dict:
        n = len(self.results) or 1
        return {
            "source": self.source,
            "queries": len(self.results),
            "golds": self.golds,
            "modes": list(self.modes),
            "ks": list(self.ks),
            "depth": self.depth,
            "include_old": self.include_old,
            "cross_references": self.cross_references,
            "query_glossary": self.query_glossary,
            "aggregate": self.aggregate,
            "ms_per_query": {m: round(1000 * s / n, 1) for m, s in self.seconds.items()},
            "unresolved": [{"id": q, "citation": g.citation, "problem": g.problem}
                           for q, g in self.unresolved],
            "old_versions_only": [{"id": q, "citation": g.citation, "article": g.article}
                                  for q, g in self.old_only],
            "per_query": [_result_dict(r) for r in self.results],
        }


def _result_dict(r: QueryResult) -> dict:
    return {
        "id": r.query.id,
        "query": r.query.query,
        "golds": [{"citation": g.citation, "article": g.article if g.key else None,
                   "problem": g.problem or None} for g in r.golds],
        "ranks": {m: [NOT_FOUND if x is None else x for x in ranks]
                  for m, ranks in r.ranks.items()},
        "metrics": r.metrics,
    }


def run_eval(
    backend: SearchBackend,
    queries: Sequence[EvalQuery],
    modes: Sequence[str] = MODES,
    ks: Sequence[int] = DEFAULT_KS,
    *,
    include_old: bool = False,
    progress: Progress | None = None,
    source: str = "",
) -> EvalReport:
    """Search every query once per mode at depth max(ks, 10) and measure the gold ranks.

    progress, when given, is called with 1 after each search (len(queries) * len(modes)
    calls in all), so a caller can drive a progress bar.
    """
    modes, ks = check_modes(modes), check_ks(ks)
    if not queries:
        raise EvalError("no queries to evaluate")
    if "dense" not in backend.parts and set(modes) & {"dense", "hybrid"}:
        # Without vectors the retriever falls back to BM25; a number labelled "dense"
        # or "hybrid" would then be a BM25 number.
        raise EvalError("the index has no dense part, so dense and hybrid cannot be measured",
                        fix="wait for `legalrag index build` to finish embedding, "
                            "or evaluate --modes bm25")
    depth = max(max(ks), RANK_CUTOFF)
    cache: dict[str, Gold] = {}
    resolved: list[tuple[Gold, ...]] = []
    for q in queries:
        golds = tuple(cache.get(c) or cache.setdefault(c, resolve_gold(c, backend))
                      for c in q.relevant)
        keys = [g.key for g in golds if g.key]
        if len(set(keys)) != len(keys):
            dup = next(g.article for g in golds if g.key and keys.count(g.key) > 1)
            raise EvalInputError(q.source or source, q.line,
                                 f"query {q.id!r} lists {dup} more than once")
        resolved.append(golds)
    bad = sum(not g.resolved for gs in resolved for g in gs)
    if bad:
        log.warning("%d gold citation(s) do not resolve; they count as misses", bad)

    ranks: dict[str, list[tuple[int | None, ...]]] = {}
    seconds: dict[str, float] = {}
    for mode in modes:
        start = time.perf_counter()
        ranks[mode] = []
        for q, golds in zip(queries, resolved, strict=True):
            hits = backend.search(q.query, k=depth, mode=mode, include_old=include_old)
            ranks[mode].append(gold_ranks(hits, golds))
            if progress:
                progress(1)
        seconds[mode] = time.perf_counter() - start
        log.info("%s: %d queries in %.1f s", mode, len(queries), seconds[mode])

    results = tuple(
        QueryResult(q, golds, {m: ranks[m][i] for m in modes},
                    {m: query_metrics(ranks[m][i], ks) for m in modes})
        for i, (q, golds) in enumerate(zip(queries, resolved, strict=True))
    )
    aggregate = {m: mean_metrics([r.metrics[m] for r in results]) for m in modes}
    settings = getattr(backend, "settings", None)
    xref, glossary = (getattr(settings, name, None) for name in ("cross_references",
                                                                 "query_glossary"))
    return EvalReport(source, modes, ks, depth, include_old, results, aggregate, seconds,
                      xref if isinstance(xref, bool) else None,
                      glossary if isinstance(glossary, bool) else None)


def check_modes(modes: Iterable[str]) -> tuple[str, ...]:
    """Modes in the order given, without repeats; raises EvalError for an unknown one."""
    out = tuple(dict.fromkeys(m.strip() for m in modes if m.strip()))
    unknown = [m for m in out if m not in MODES]
    if unknown or not out:
        raise EvalError(f"unknown mode(s) {', '.join(unknown) or '(none given)'}",
                        fix=f"use one or more of {', '.join(MODES)}")
    return out


def check_ks(ks: Iterable[int]) -> tuple[int, ...]:
    """Cut-offs sorted, without repeats; raises EvalError unless each is 1..1000."""
    out = tuple(sorted(set(ks)))
    if not out or any(not 1 <= k <= 1000 for k in out):
        raise EvalError(f"cut-offs must be between 1 and 1000, got {list(ks)}")
    return out


# ---------------------------------------------------------------------------------------
# Bounds for --fail-under

_BOUND_RE = re.compile(r"^\s*(\w+)\s*:\s*([A-Za-z]+@\d+)\s*(?:>=|=)\s*([0-9.]+)\s*$")


@dataclass(frozen=True, slots=True)
class Bound:
    """A floor for one metric of one mode: hybrid:recall@10=0.6."""

    mode: str
    metric: str
    minimum: float

    def __str__(self) -> str:
        return f"{self.mode}:{self.metric}>={self.minimum:g}"


def parse_bound(text: str) -> Bound:
    """Parse MODE:METRIC@K=VALUE (METRIC is hit, recall, mrr or ndcg, any case).

    >>> parse_bound("hybrid:Recall@10=0.6")
    Bound(mode='hybrid', metric='recall@10', minimum=0.6)
    """
    m = _BOUND_RE.match(text)
    if not m:
        raise EvalError(f"cannot read bound {text!r}", fix="write it as hybrid:recall@10=0.6")
    mode, metric, value = m.group(1), m.group(2).lower(), m.group(3)
    name, k = metric.split("@")
    if mode not in MODES:
        raise EvalError(f"bound {text!r}: unknown mode {mode!r}", fix=f"use one of {MODES}")
    if name not in ("hit", "recall", "mrr", "ndcg"):
        raise EvalError(f"bound {text!r}: unknown metric {name!r}",
                        fix="use hit@K, recall@K, mrr@10 or ndcg@10")
    try:
        minimum = float(value)
    except ValueError:
        raise EvalError(f"bound {text!r}: {value!r} is not a number") from None
    if not 0.0 <= minimum <= 1.0:
        raise EvalError(f"bound {text!r}: {minimum} is outside 0..1")
    return Bound(mode, f"{name}@{int(k)}", minimum)


def check_bound_metrics(bounds: Iterable[Bound], modes: Sequence[str],
                        ks: Sequence[int]) -> None:
    """Raise EvalError, before any search runs, for a bound the run will not measure."""
    names = set(metric_names(ks))
    for b in bounds:
        if b.mode not in modes:
            raise EvalError(f"bound {b} needs mode {b.mode}, which is not in --modes")
        if b.metric not in names:
            raise EvalError(f"bound {b} needs {b.metric}, which is not measured",
                            fix=f"measured: {', '.join(sorted(names))}")


def missed_bounds(report: EvalReport, bounds: Iterable[Bound]) -> list[str]:
    """A line for each bound the report falls below; empty when all hold."""
    out = []
    for b in bounds:
        value = report.aggregate[b.mode][b.metric]
        if value < b.minimum:
            out.append(f"{b.mode} {b.metric} = {value:.4f} is below {b.minimum:g}")
    return out


# ---------------------------------------------------------------------------------------
# Output


def _display(name: str) -> str:
    base, k = name.split("@")
    return {"hit": "Hit", "recall": "Recall", "mrr": "MRR", "ndcg": "nDCG"}[base] + "@" + k


def render_markdown(report: EvalReport, max_listed: int | None = 20) -> str:
    """The aggregate table (one row per mode) and the list of unresolved golds.

    max_listed caps that list (None: all of it); the full list is always in the JSON.
    """
    names = metric_names(report.ks)
    n = len(report.results)
    head = ["mode", *map(_display, names), "ms/query"]
    lines = [
        f"{n} queries, {report.golds} gold articles ({len(report.unresolved)} unresolved), "
        f"{'all versions' if report.include_old else 'in-force articles'}, depth {report.depth}"
        + ("" if report.cross_references is None
           else f", cross-references {'on' if report.cross_references else 'off'}")
        + ("" if report.query_glossary is None
           else f", glossary {'on' if report.query_glossary else 'off'}"),
        "",
        "| " + " | ".join(head) + " |",
        "|---|" + "---:|" * (len(head) - 1),
    ]
    for mode in report.modes:
        agg = report.aggregate[mode]
        ms = 1000 * report.seconds.get(mode, 0.0) / max(n, 1)
        cells = [mode, *(f"{agg[x]:.3f}" for x in names), f"{ms:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    unresolved = report.unresolved
    if unresolved:
        shown = unresolved if max_listed is None else unresolved[:max_listed]
        lines += ["", f"Unresolved gold citations ({len(unresolved)}; each counts as a miss):", ""]
        lines += [f"- {q}: {g.citation} — {g.problem}" for q, g in shown]
        if len(shown) < len(unresolved):
            lines.append(f"- … and {len(unresolved) - len(shown)} more (see eval.json)")
    if report.old_only:
        lines += ["", f"{len(report.old_only)} gold article(s) exist only in old versions."]
    return "\n".join(lines) + "\n"


def write_report(report: EvalReport, out_dir: Path) -> list[Path]:
    """Write eval.json (everything), eval.md (the table) and per_query.csv (one row per
    query and gold, with its rank in each mode or 'not found') into out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    js, md, per = out_dir / "eval.json", out_dir / "eval.md", out_dir / "per_query.csv"
    js.write_text(json.dumps(report.to_dict(), ensure_ascii=False, indent=1) + "\n",
                  encoding="utf-8")
    md.write_text(render_markdown(report, max_listed=None), encoding="utf-8")
    with per.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "query", "gold", "article", "status",
                    *(f"rank_{m}" for m in report.modes)])
        for r in report.results:
            for i, g in enumerate(r.golds):
                status = g.problem or ("ok" if g.in_force else "old versions only")
                ranks = [r.ranks[m][i] for m in report.modes]
                w.writerow([r.query.id, r.query.query, g.citation, g.article if g.key else "",
                            status, *(NOT_FOUND if x is None else x for x in ranks)])
    return [js, md, per]
