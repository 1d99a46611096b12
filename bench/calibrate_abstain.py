"""Calibrate the abstain thresholds: answer STARD questions, abstain on out-of-corpus ones.

    .venv/bin/python bench/calibrate_abstain.py [--stard data/eval/stard_train.jsonl]
        [--ooc bench/data/out_of_corpus.jsonl] [--max-false-abstain 0.02] [-k 5]

Retrieves the top k articles (as an answer does, settings.answer_top_k) for every STARD
training question (all in the corpus's domain) and every out-of-corpus question (chess,
cooking, programming, sports, weather …; bench/data/out_of_corpus.jsonl), and records the
evidence abstain.measure gathers: an exact citation, the best dense cosine and the best
BM25 score (each retriever's own best as well as among the hits). It then picks the rule
"abstain when dense < d and bm25 < b" (no exact citation) that abstains on the most
out-of-corpus questions while abstaining on at most --max-false-abstain of the STARD
questions, and reports:

- the chosen thresholds (copy them to config.py: abstain_min_dense, abstain_min_bm25);
- false-abstain rate on STARD and correct-abstain rate on the out-of-corpus questions;
- the same with each score alone, and a two-fold check (fit on one half of each set,
  measure on the other) to show how much the numbers owe to fitting;
- the out-of-corpus questions still answered and the STARD questions abstained on.

With --check RATE it also fails when config.py's thresholds abstain on more than RATE of the
STARD questions (scripts/eval_gate.sh runs it): a query encoder trained another way moves the
cosines, and thresholds left behind refuse real questions.

When the index carries a query encoder tuned on STARD training questions (part
tuned-queries), only the dev part of them (tune.split_of: never seen by the tuner) is used:
the tuned encoder scores its own training questions higher than a user's question.

Writes bench/results/abstain.json. Needs a built index (`legalrag index build`) with the
dense part.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from legalrag.config import Settings  # noqa: E402
from legalrag.index.tune import split_of  # noqa: E402
from legalrag.retrieval.abstain import AbstainRule, Relevance, measure  # noqa: E402
from legalrag.retrieval.retriever import Retriever  # noqa: E402


def load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def evidence(retriever: Retriever, queries: list[dict], k: int) -> list[Relevance]:
    out = []
    t0 = time.perf_counter()
    for i, q in enumerate(queries, 1):
        out.append(measure(retriever, q["query"], retriever.search(q["query"], k=k)))
        if i % 200 == 0:
            print(f"  {i}/{len(queries)} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    return out


def rates(rule: AbstainRule, inside: list[Relevance], outside: list[Relevance]
          ) -> tuple[float, float]:
    """(false-abstain rate on in-corpus questions, correct-abstain rate on the others)."""
    fa = sum(rule.abstains(r) for r in inside) / len(inside)
    ca = sum(rule.abstains(r) for r in outside) / len(outside)
    return fa, ca


def fit(inside: list[Relevance], outside: list[Relevance], max_fa: float,
        use_dense: bool = True, use_bm25: bool = True) -> AbstainRule:
    """The rule with the highest correct-abstain rate on outside whose false-abstain rate
    on inside is at most max_fa (ties: fewer false abstentions, then a lower threshold).

    Exact, not a grid: for each dense threshold d, the in-corpus questions with dense < d
    (and no exact citation) are the ones the BM25 threshold must protect, so the largest
    admissible b is the (allowed + 1)-th smallest of their BM25 scores.
    """
    inf = float("inf")
    allowed = int(max_fa * len(inside))
    ds = [0.0, *sorted({r.dense for r in inside + outside}), inf] if use_dense else [inf]
    best: tuple[tuple[float, float, float], AbstainRule] | None = None
    for d in ds:
        pool = sorted(r.bm25 for r in inside if r.dense < d and not r.lookup)
        if use_bm25:
            b = pool[allowed] if len(pool) > allowed else inf
        elif len(pool) <= allowed:
            b = inf
        else:
            continue
        rule = AbstainRule(d, b)
        fa, ca = rates(rule, inside, outside)
        key = (ca, -fa, -d)
        if best is None or key > best[0]:
            best = (key, rule)
    assert best is not None  # d = 0 never abstains
    return best[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stard", default=str(ROOT / "data/eval/stard_train.jsonl"))
    p.add_argument("--ooc", default=str(ROOT / "bench/data/out_of_corpus.jsonl"))
    p.add_argument("--max-false-abstain", type=float, default=0.02)
    p.add_argument("-k", type=int, default=None, help="hits per question (answer_top_k)")
    p.add_argument("--split", choices=["auto", "all", "dev"], default="auto",
                   help="STARD questions to use: dev = the part the index's query encoder "
                        "was not tuned on (auto: dev when the index has a tuned encoder)")
    p.add_argument("--out", default=str(ROOT / "bench/results/abstain.json"))
    p.add_argument("--check", type=float, metavar="RATE",
                   help="fail (exit 1) when config.py's thresholds abstain on more than RATE "
                        "of the STARD questions: the thresholds belong to the query encoder, "
                        "and a new one needs them calibrated again")
    args = p.parse_args()

    settings = Settings.load()
    k = args.k or settings.answer_top_k
    retriever = Retriever.open(settings)
    if "dense" not in retriever.parts:
        print("the index has no dense part yet; run `legalrag index build` first",
              file=sys.stderr)
        return 2
    retriever.warm_up()
    stard, ooc = load(Path(args.stard)), load(Path(args.ooc))
    # A query encoder tuned on STARD questions scores them higher than questions it never
    # saw; calibrating on those would set the thresholds too low for real users.
    split = args.split
    if split == "auto":
        split = "dev" if retriever.query_encoder != "base" else "all"
    if split == "dev":
        stard = [q for q in stard if split_of(q["id"]) == "dev"]
    print(f"retrieving k={k} for {len(stard)} STARD and {len(ooc)} out-of-corpus questions",
          file=sys.stderr)
    t0 = time.perf_counter()
    inside, outside = evidence(retriever, stard, k), evidence(retriever, ooc, k)
    secs = time.perf_counter() - t0

    m = args.max_false_abstain
    rule = fit(inside, outside, m)
    configured = (AbstainRule(settings.abstain_min_dense_base, settings.abstain_min_bm25_base)
                  if retriever.query_encoder == "base"
                  else AbstainRule(settings.abstain_min_dense, settings.abstain_min_bm25))
    dense_only = fit(inside, outside, m, use_bm25=False)
    bm25_only = fit(inside, outside, m, use_dense=False)
    # Two-fold check: fit on even-indexed questions, measure on odd ones, and vice versa.
    folds = []
    for a, b in ((0, 1), (1, 0)):
        r = fit(inside[a::2], outside[a::2], m)
        folds.append((r, *rates(r, inside[b::2], outside[b::2])))

    def row(name: str, r: AbstainRule, ins=inside, outs=outside) -> str:
        fa, ca = rates(r, ins, outs)
        return (f"| {name} | {r.min_dense:.4f} | {r.min_bm25:.3f} | {fa:.1%} | {ca:.1%} |")

    lines = [
        f"STARD train ({split}): {len(stard)} questions; out of corpus: {len(ooc)}; k = {k}; "
        f"retrieval {secs:.0f} s; allowed false-abstain rate {m:.0%}",
        f"lookup (exact citation) in STARD: {sum(r.lookup for r in inside)}, "
        f"out of corpus: {sum(r.lookup for r in outside)}",
        "",
        "| rule | min dense | min bm25 | false abstain (STARD) | correct abstain (out of corpus) |",
        "|---|---|---|---|---|",
        row("dense + bm25 (chosen)", rule),
        row("as configured now (config.py)", configured),
        row("dense only", dense_only),
        row("bm25 only", bm25_only),
    ]
    for other in (0.005, 0.01, 0.05):
        lines.append(row(f"dense + bm25, at most {other:.1%} false abstain",
                         fit(inside, outside, other)))
    for i, (r, fa, ca) in enumerate(folds):
        lines.append(f"| fold {i + 1}: fit on one half, measured on the other | "
                     f"{r.min_dense:.4f} | {r.min_bm25:.3f} | {fa:.1%} | {ca:.1%} |")
    missed = [q["query"] for q, r in zip(ooc, outside, strict=True) if not rule.abstains(r)]
    wrong = [q["query"] for q, r in zip(stard, inside, strict=True) if rule.abstains(r)]
    lines += ["", f"out-of-corpus questions still answered ({len(missed)}):"]
    lines += [f"- {q}" for q in missed]
    lines += ["", f"STARD questions abstained on ({len(wrong)}):"]
    lines += [f"- {q}" for q in wrong[:30]]
    dist = {name: {"stard": sorted(getattr(r, name) for r in inside),
                   "ooc": sorted(getattr(r, name) for r in outside)} for name in ("dense", "bm25")}
    for name, d in dist.items():
        s, o = d["stard"], d["ooc"]
        lines.append(f"\n{name}: STARD p5/p50 = {s[len(s) // 20]:.3f}/{s[len(s) // 2]:.3f}; "
                     f"out of corpus p50/p95 = {o[len(o) // 2]:.3f}/{o[len(o) * 19 // 20]:.3f}")
    print("\n".join(lines))
    suffix = "_base" if retriever.query_encoder == "base" else ""
    print(f"\nset in config.py: abstain_min_dense{suffix} = {rule.min_dense:.4f}, "
          f"abstain_min_bm25{suffix} = {rule.min_bm25:.3f}, "
          f"abstain_min_bm25_alone = {bm25_only.min_bm25:.3f}")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fa, ca = rates(rule, inside, outside)
    out.write_text(json.dumps({
        "k": k, "split": split, "parts": sorted(retriever.parts), "max_false_abstain": m,
        "min_dense": rule.min_dense, "min_bm25": rule.min_bm25,
        "min_bm25_alone": bm25_only.min_bm25,
        "false_abstain": fa, "correct_abstain": ca, "n_stard": len(stard), "n_ooc": len(ooc),
        "folds": [{"min_dense": r.min_dense, "min_bm25": r.min_bm25, "false_abstain": f,
                   "correct_abstain": c} for r, f, c in folds],
        "still_answered": missed, "abstained_stard": wrong,
    }, ensure_ascii=False, indent=1) + "\n")
    configured_fa = rates(configured, inside, outside)[0]
    if args.check is not None and configured_fa > args.check:
        print(f"FAIL: the configured abstain thresholds (config.py, or LEGALRAG_ABSTAIN_*) "
              f"abstain on {configured_fa:.1%} of the "
              f"STARD {split} questions (at most {args.check:.1%} allowed); fix: set the "
              f"values printed above in config.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
