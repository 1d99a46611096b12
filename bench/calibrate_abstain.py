"""Calibrate the abstain thresholds: answer STARD questions, abstain on out-of-corpus ones.

    .venv/bin/python bench/calibrate_abstain.py [--stard data/eval/stard_train.jsonl]
        [--ooc bench/data/out_of_corpus.jsonl] [--max-false-abstain 0.02] [-k 5]
        [--fit-on tune|all] [--check RATE]

Retrieves the top k articles (as an answer does, settings.answer_top_k) for every STARD
training question (all in the corpus's domain) and every out-of-corpus question (chess,
cooking, programming, sports, weather …; bench/data/out_of_corpus.jsonl), and records the
evidence abstain.measure gathers: an exact citation, the best cosine of the base embedding
model and BM25's best score. It then picks the rule "abstain when dense < d and bm25 < b"
(no exact citation) that abstains on the most out-of-corpus questions while abstaining on at
most --max-false-abstain of the STARD questions it is fitted on, and reports:

- the chosen thresholds (copy them to config.py: abstain_min_dense, abstain_min_bm25);
- false-abstain rates on the STARD questions fitted on and on the dev part, and the
  correct-abstain rate on the out-of-corpus questions;
- the same with each score alone, and a two-fold check (fit on one half of each set,
  measure on the other) to show how much the numbers owe to fitting;
- the out-of-corpus questions still answered and the STARD questions abstained on.

Neither the base model nor BM25 was trained on a STARD question, so the thresholds are fitted
on the tune part (1,000 questions) and the dev part (235) is the held-out check. With --check
RATE the script fails when config.py's thresholds abstain on more than RATE of the dev
questions (scripts/eval_gate.sh runs it): another embedding model, segmenter or corpus moves
the scores, and thresholds left behind would refuse real questions.

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


def evidence(retriever: Retriever, queries: list[dict], k: int,
             ms: list[float] | None = None) -> list[Relevance]:
    """Each question's Relevance; ms (when given) gets the milliseconds abstain.measure
    took for each, the cost the rule adds to an answer."""
    out = []
    t0 = time.perf_counter()
    for i, q in enumerate(queries, 1):
        hits = retriever.search(q["query"], k=k)
        t1 = time.perf_counter()
        out.append(measure(retriever, q["query"], hits))
        if ms is not None:
            ms.append(1000 * (time.perf_counter() - t1))
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
    p.add_argument("--fit-on", choices=["tune", "all"], default="tune",
                   help="STARD questions the thresholds are fitted on (tune: the dev part "
                        "is kept out and reported as the held-out check)")
    p.add_argument("--out", default=str(ROOT / "bench/results/abstain.json"))
    p.add_argument("--check", type=float, metavar="RATE",
                   help="only check: fail (exit 1) when config.py's thresholds abstain on "
                        "more than RATE of the STARD dev questions (nothing is fitted)")
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
    configured = AbstainRule(settings.abstain_min_dense, settings.abstain_min_bm25)
    if args.check is not None:  # the dev part and the out-of-corpus questions are enough
        took: list[float] = []
        dev = evidence(retriever, [q for q in stard if split_of(q["id"]) == "dev"], k, took)
        fa, ca = rates(configured, dev, evidence(retriever, ooc, k, took))
        took.sort()
        print(f"configured (min dense {configured.min_dense}, min bm25 "
              f"{configured.min_bm25}): false abstain {fa:.1%} of {len(dev)} STARD dev "
              f"questions, correct abstain {ca:.1%} of {len(ooc)} out of corpus; "
              f"abstain.measure p50 {took[len(took) // 2]:.1f} ms, p95 "
              f"{took[len(took) * 19 // 20]:.1f} ms")
        if fa > args.check:
            print(f"FAIL: the configured abstain thresholds (config.py, or LEGALRAG_ABSTAIN_*) "
                  f"abstain on {fa:.1%} of the STARD dev questions (at most {args.check:.1%} "
                  "allowed); fix: run bench/calibrate_abstain.py and set the values it "
                  "prints in config.py", file=sys.stderr)
            return 1
        return 0
    print(f"retrieving k={k} for {len(stard)} STARD and {len(ooc)} out-of-corpus questions",
          file=sys.stderr)
    t0 = time.perf_counter()
    ms: list[float] = []
    every, outside = evidence(retriever, stard, k, ms), evidence(retriever, ooc, k, ms)
    secs = time.perf_counter() - t0
    ms.sort()
    dev_q = [q for q in stard if split_of(q["id"]) == "dev"]
    dev = [r for q, r in zip(stard, every, strict=True) if split_of(q["id"]) == "dev"]
    fit_q = stard if args.fit_on == "all" else [q for q in stard if split_of(q["id"]) != "dev"]
    inside = every if args.fit_on == "all" else \
        [r for q, r in zip(stard, every, strict=True) if split_of(q["id"]) != "dev"]

    m = args.max_false_abstain
    rule = fit(inside, outside, m)
    dense_only = fit(inside, outside, m, use_bm25=False)
    bm25_only = fit(inside, outside, m, use_dense=False)
    # Two-fold check: fit on even-indexed questions, measure on odd ones, and vice versa.
    folds = []
    for a, b in ((0, 1), (1, 0)):
        r = fit(inside[a::2], outside[a::2], m)
        folds.append((r, *rates(r, inside[b::2], outside[b::2])))

    def row(name: str, r: AbstainRule) -> str:
        fa, ca = rates(r, inside, outside)
        return (f"| {name} | {r.min_dense:.4f} | {r.min_bm25:.3f} | {fa:.1%} | "
                f"{rates(r, dev, outside)[0]:.1%} | {ca:.1%} |")

    lines = [
        f"STARD: fitted on {args.fit_on} ({len(inside)} questions), dev {len(dev)}; out of "
        f"corpus: {len(ooc)}; k = {k}; retrieval {secs:.0f} s; allowed false-abstain rate "
        f"{m:.0%}; abstain.measure p50 {ms[len(ms) // 2]:.1f} ms, p95 "
        f"{ms[len(ms) * 19 // 20]:.1f} ms a question",
        f"lookup (exact citation) in STARD: {sum(r.lookup for r in every)}, "
        f"out of corpus: {sum(r.lookup for r in outside)}",
        "",
        f"| rule | min dense | min bm25 | false abstain (STARD {args.fit_on}, fitted) | "
        "false abstain (STARD dev) | correct abstain (out of corpus) |",
        "|---|---|---|---|---|---|",
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
                     f"{r.min_dense:.4f} | {r.min_bm25:.3f} | {fa:.1%} | | {ca:.1%} |")
    missed = [q["query"] for q, r in zip(ooc, outside, strict=True) if not rule.abstains(r)]
    wrong = [q["query"] for q, r in zip(fit_q, inside, strict=True) if rule.abstains(r)]
    wrong_dev = [q["query"] for q, r in zip(dev_q, dev, strict=True) if rule.abstains(r)]
    lines += ["", f"out-of-corpus questions still answered ({len(missed)}):"]
    lines += [f"- {q}" for q in missed]
    lines += ["", f"STARD {args.fit_on} questions abstained on ({len(wrong)}):"]
    lines += [f"- {q}" for q in wrong[:30]]
    lines += ["", f"STARD dev questions abstained on ({len(wrong_dev)}):"]
    lines += [f"- {q}" for q in wrong_dev]
    dist = {name: {"stard": sorted(getattr(r, name) for r in inside),
                   "ooc": sorted(getattr(r, name) for r in outside)} for name in ("dense", "bm25")}
    for name, d in dist.items():
        s, o = d["stard"], d["ooc"]
        lines.append(f"\n{name}: STARD p5/p50 = {s[len(s) // 20]:.3f}/{s[len(s) // 2]:.3f}; "
                     f"out of corpus p50/p95 = {o[len(o) // 2]:.3f}/{o[len(o) * 19 // 20]:.3f}")
    print("\n".join(lines))
    print(f"\nset in config.py: abstain_min_dense = {rule.min_dense:.4f}, "
          f"abstain_min_bm25 = {rule.min_bm25:.3f}, "
          f"abstain_min_bm25_alone = {bm25_only.min_bm25:.3f}")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fa, ca = rates(rule, inside, outside)
    out.write_text(json.dumps({
        "k": k, "fit_on": args.fit_on, "parts": sorted(retriever.parts),
        "max_false_abstain": m, "measure_ms_p50": ms[len(ms) // 2],
        "measure_ms_p95": ms[len(ms) * 19 // 20], "min_dense": rule.min_dense,
        "min_bm25": rule.min_bm25, "min_bm25_alone": bm25_only.min_bm25,
        "false_abstain": fa, "false_abstain_dev": rates(rule, dev, outside)[0],
        "correct_abstain": ca, "n_stard": len(inside), "n_dev": len(dev), "n_ooc": len(ooc),
        "configured": {"min_dense": configured.min_dense, "min_bm25": configured.min_bm25,
                       "false_abstain_dev": rates(configured, dev, outside)[0],
                       "correct_abstain": rates(configured, dev, outside)[1]},
        "folds": [{"min_dense": r.min_dense, "min_bm25": r.min_bm25, "false_abstain": f,
                   "correct_abstain": c} for r, f, c in folds],
        "still_answered": missed, "abstained_stard": wrong, "abstained_dev": wrong_dev,
    }, ensure_ascii=False, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
