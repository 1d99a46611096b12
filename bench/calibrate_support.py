"""Calibrate the claim-support score (src/legalrag/answer/support.py) on labelled pairs.

Three steps, each reproducible:

1. Answers: the default model answers STARD *tune*-part questions (never the dev part):
       legalrag eval-answers data/eval/stard_train.jsonl --split tune -n 100 --out out/support
2. Pairs: every citation of those answers that the check would hand to the support
   scorer (a citation of one of its sources, by 《法》第N条 or [n], outside words copied
   from that source) becomes a (sentence, cited article) pair to label:
       python bench/calibrate_support.py pairs out/support/answers.json --out out/pairs.jsonl
   Two reviewers label every pair on their own (the rule is in data/eval/README.md);
   their files are joined, with agreement and Cohen's kappa:
       python bench/calibrate_support.py merge --pairs P.jsonl --a A.jsonl --b B.jsonl \
           --out data/eval/support_labels.jsonl
   Reviewers who should not know which pairs are swapped read a shuffled file under new
   ids (`blind P.jsonl --out BLIND.jsonl --key KEY.json`); `merge --key KEY.json` then
   maps their labels back.
3. Fit: a logistic regression over the support features of the labelled pairs of the fit
   part (by a hash of the question id), and the lowest threshold whose precision on the
   fit part is at least --precision; reported on the held-out part, written with --write
   to src/legalrag/data/support.json:
       python bench/calibrate_support.py fit data/eval/support_labels.jsonl [--write]
4. Test: a fitted model on a later batch it never saw (rows from --first-row on):
       python bench/calibrate_support.py test data/eval/support_labels.jsonl --first-row N \
           [--model support.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from legalrag.answer.check import check_answer  # noqa: E402
from legalrag.answer.support import (  # noqa: E402
    FEATURES,
    SupportModel,
    changes_rule,
    features,
    quotes_clauses,
)
from legalrag.records import Article  # noqa: E402

HELD_OUT_SHARE = 3  # one question in three is held out


def part_of(question_id: str) -> str:
    """fit or held_out, fixed by a hash of the question id (all pairs of one answer stay
    together, so the held-out part measures answers the fit never saw)."""
    digest = hashlib.sha256(f"support:{question_id}".encode()).digest()
    return "held_out" if digest[0] % HELD_OUT_SHARE == 0 else "fit"


def article_from(hit: dict) -> Article:
    """An Article rebuilt from a Hit.to_dict() record of eval-answers output."""
    return Article(hit["law_title"], hit["law"], hit["level"], "", tuple(hit["path"]),
                   hit["number"], hit["suffix"], hit["label"], hit["text"], hit["version"],
                   hit["in_force"], hit["source"], 0)


def make_pairs(answers_json: Path, facts, swapped: bool = True) -> list[dict]:
    """The (sentence, cited source) pairs of a legalrag eval-answers output, to be labelled:
    exactly the calls the citation check makes to the support scorer, recorded by running
    the check again on each answer with a scorer that says yes to everything. So only
    citations that name a source and stand outside words copied from it are pairs, and
    each pair's sentence is the one the check will score. With swapped, each such pair
    also gets a twin: the same sentence against another source of the same answer (kind
    "swapped"), which doubles the evidence on what an unsupported citation looks like;
    precision and recall are reported on the cited pairs, the real distribution.
    """
    data = json.loads(answers_json.read_text(encoding="utf-8"))
    # A source that was not retrieved (an article a chosen paragraph points to, added by
    # the passage design) is not among the hits: it is taken from the corpus.
    by_id = {a.id: a for versions in facts.articles.values() for a in versions}
    out: list[dict] = []
    for row in data["questions"]:
        ans = row["answer"]
        if ans["abstained"]:
            continue
        hits = {h["id"]: h for h in ans["hits"]}
        sources = [article_from(hits[s["id"]]) if s["id"] in hits else by_id[s["id"]]
                   for s in ans["sources"]]
        calls: list[tuple[str, Article]] = []

        def record(sentence: str, article: Article, calls=calls) -> bool:
            calls.append((sentence, article))
            return True

        check_answer(ans["raw_text"], sources, facts, record)
        seen: set[tuple[str, str]] = set()
        for sentence, article in calls:
            n = sources.index(article) + 1
            pairs = [("cited", n, article)]
            if swapped:
                # The same sentence against the next source shown with it: the wrong
                # source a small model cites often enough ([2] for [1]).
                other = next((k for k in [*range(n + 1, len(sources) + 1), *range(1, n)]
                              if sources[k - 1].id != article.id), None)
                if other is not None:
                    pairs.append(("swapped", other, sources[other - 1]))
            for kind, k, a in pairs:
                if (sentence, a.id) in seen:
                    continue
                seen.add((sentence, a.id))
                out.append({
                    "pair": f"{row['id']}:{len(seen)}", "question_id": row["id"],
                    "question": row["query"], "sentence": sentence, "kind": kind,
                    "source": k, "article": a.citation, "article_id": a.id,
                    "law_title": a.law_title, "version": a.version, "article_text": a.text,
                })
    return out


def corpus_facts():
    """CorpusFacts of the live index (the citation check's view of the corpus)."""
    from legalrag.answer.check import CorpusFacts
    from legalrag.config import Settings
    from legalrag.index.store import ARTICLES, IndexStore, read_articles

    build = IndexStore(Settings.load().index_dir).current()
    return CorpusFacts.from_articles(read_articles(build / ARTICLES))


def article_of(pair: dict) -> Article:
    """The cited article, rebuilt from the pair record (no index needed)."""
    law = pair["article"][1:pair["article"].index("》")]
    label = pair["article"][pair["article"].index("》") + 1:]
    return Article(pair["law_title"], law, "", "", (), 0, 0, label, pair["article_text"],
                   pair["version"], True, "", 0)


def merge(pairs: list[dict], labels_a: list[dict], labels_b: list[dict]) -> tuple[list[dict], dict]:
    """The labelled file: each pair with both reviewers' labels, and the label that counts
    (supported only when both said so); with their agreement and Cohen's kappa."""
    a = {r["pair"]: r["label"] for r in labels_a}
    b = {r["pair"]: r["label"] for r in labels_b}
    missing = [p["pair"] for p in pairs if p["pair"] not in a or p["pair"] not in b]
    if missing:
        raise SystemExit(f"pairs without both labels: {missing[:5]}")
    rows = [{**p, "label_a": a[p["pair"]], "label_b": b[p["pair"]],
             "label": "supported" if a[p["pair"]] == b[p["pair"]] == "supported"
             else "not_supported"} for p in pairs]
    n = len(rows)
    agree = sum(r["label_a"] == r["label_b"] for r in rows) / n
    pa = sum(r["label_a"] == "supported" for r in rows) / n
    pb = sum(r["label_b"] == "supported" for r in rows) / n
    chance = pa * pb + (1 - pa) * (1 - pb)
    kappa = (agree - chance) / (1 - chance) if chance < 1 else 1.0
    return rows, {"pairs": n, "cited": sum(r["kind"] == "cited" for r in rows),
                  "supported": sum(r["label"] == "supported" for r in rows),
                  "agreement": round(agree, 4), "kappa": round(kappa, 4)}


def blind(pairs: list[dict], seed: int = 0) -> tuple[list[dict], dict[str, str]]:
    """What a reviewer reads, and the key back to the pairs: each pair under a new id
    (b0001 …) in a shuffled order, with only the question, the sentence, the citation
    and the article's text. Neither the order, the id nor any field tells a cited pair
    from its swapped twin, or says what the scorer decided."""
    import random

    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    rows, key = [], {}
    for n, i in enumerate(order, 1):
        p = pairs[i]
        key[f"b{n:04d}"] = p["pair"]
        rows.append({"pair": f"b{n:04d}", "question": p["question"], "sentence": p["sentence"],
                     "citation": p["article"], "article_text": p["article_text"]})
    return rows, key


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]


def load_labelled(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]
    bad = [r["pair"] for r in rows if r.get("label") not in ("supported", "not_supported")]
    if bad:
        raise SystemExit(f"{path}: pairs without a supported/not_supported label: {bad[:5]}")
    return rows


def default_embed():
    from legalrag.config import Settings
    from legalrag.index.embed import load_embedder

    embedder = load_embedder(Settings.load())
    return lambda texts: embedder.encode(texts)


def precision_recall(y: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    tp = int((pred & y).sum())
    precision = tp / int(pred.sum()) if pred.any() else 1.0
    recall = tp / int(y.sum()) if y.any() else 0.0
    return precision, recall


def fit(rows: list[dict], embed, target: float) -> tuple[SupportModel, dict]:
    from sklearn.linear_model import LogisticRegression

    x = features([(r["sentence"], article_of(r)) for r in rows], embed)
    y = np.array([r["label"] == "supported" for r in rows])
    # A copy that changes the article's modal or a number is never supported (altered):
    # the decision is the score and that rule, so both are fitted and reported together.
    ok = np.array([not changes_rule(r["sentence"], article_of(r)) for r in rows])
    # A whole-clause quotation is supported whatever its score (quotes_clauses): it is
    # part of the decision reported, not of the threshold's choice.
    quoted = np.array([quotes_clauses(r["sentence"], article_of(r)) for r in rows])
    parts = np.array([part_of(r["question_id"]) for r in rows])
    fit_rows, held = parts == "fit", parts == "held_out"
    mean, scale = x[fit_rows].mean(0), x[fit_rows].std(0)
    scale[scale < 1e-9] = 1.0
    lr = LogisticRegression(C=1.0, max_iter=1000).fit((x[fit_rows] - mean) / scale, y[fit_rows])
    model = SupportModel(tuple(mean), tuple(scale), tuple(lr.coef_[0]), float(lr.intercept_[0]),
                         threshold=1.0)
    p_fit = model.probability(x[fit_rows]) * ok[fit_rows]
    # The lowest threshold whose fit-part precision reaches the target: the most ✓ that
    # can be given while a ✓ stays right. Candidates are the fit part's own scores.
    threshold = 1.0
    for t in sorted(set(np.round(p_fit, 6))):
        precision, _ = precision_recall(y[fit_rows], p_fit >= t)
        if precision >= target:
            threshold = float(t)
            break
    model = SupportModel(model.mean, model.scale, model.weights, model.bias, threshold)
    cited = np.array([r.get("kind", "cited") == "cited" for r in rows])
    report = {}
    for name, mask in (("fit", fit_rows & cited), ("held_out", held & cited),
                       ("held_out_with_swapped", held)):
        pred = ((model.probability(x[mask]) >= threshold) | quoted[mask]) & ok[mask]
        precision, recall = precision_recall(y[mask], pred)
        # The other label: a citation without ✓ is marked 未能核实此说法. How often was the
        # sentence in fact supported? (This is why the mark says "not verified", not
        # "the source does not say this".)
        missed = int((~pred & y[mask]).sum())
        report[name] = {"pairs": int(mask.sum()), "supported": int(y[mask].sum()),
                        "precision": round(precision, 4), "recall": round(recall, 4),
                        "not_verified": int((~pred).sum()), "not_verified_but_supported":
                        missed, "not_verified_supported_share":
                        round(missed / max(1, int((~pred).sum())), 4)}
    report["weights"] = dict(zip(FEATURES, (round(w, 4) for w in model.weights), strict=True))
    report["threshold"] = round(threshold, 6)
    report["altered_copies"] = {"cited": int((~ok & cited).sum()), "all": int((~ok).sum())}
    report["quoted_clauses"] = {"cited": int((quoted & ok & cited).sum()),
                                "all": int((quoted & ok).sum())}
    return model, report


def test(rows: list[dict], model: SupportModel, embed, quote_rule: bool = True) -> dict:
    """A fitted model (the shipped one by default) on labelled pairs it was not fitted on:
    precision of ✓ with its Wilson 95% interval, recall, and how often a citation left
    without ✓ was in fact supported. Cited pairs only, the real distribution. Without
    quote_rule, a quotation of whole clauses (quotes_clauses) is left to the score, as it
    was before 2026-12-05."""
    from scipy.stats import binomtest

    rows = [r for r in rows if r.get("kind", "cited") == "cited"]
    x = features([(r["sentence"], article_of(r)) for r in rows], embed)
    ok = np.array([not changes_rule(r["sentence"], article_of(r)) for r in rows])
    quoted = np.array([quote_rule and quotes_clauses(r["sentence"], article_of(r))
                       for r in rows], dtype=bool)
    pred = ((model.probability(x) >= model.threshold) | quoted) & ok
    y = np.array([r["label"] == "supported" for r in rows])
    precision, recall = precision_recall(y, pred)
    right, given = int((pred & y).sum()), int(pred.sum())
    low = (float(binomtest(right, given).proportion_ci(method="wilson").low) if given
           else 0.0)
    missed = int((~pred & y).sum())
    return {"pairs": len(rows), "questions": len({r["question_id"] for r in rows}),
            "supported": int(y.sum()), "given": given, "right": right,
            "precision": round(precision, 4), "precision_wilson_low": round(low, 4),
            "recall": round(recall, 4), "not_verified": int((~pred).sum()),
            "not_verified_but_supported": missed}


# A list item's lead: its bullet or number, then a bold heading that ends in a colon.
_LIST_RE = re.compile(r"^\s*(?:[-*•·]\s+|\d{1,2}[.、)）](?!\d)\s*)?"
                      r"(?:\*\*[^*\n]{1,24}\*\*\s*[:：]\s*)?")


def strip_list(sentence: str) -> str:
    """The sentence without a list item's lead and bold markup.

    >>> strip_list("1. **直接回答**：根据《劳动合同法》第三十八条，劳动者可以解除。")
    '根据《劳动合同法》第三十八条，劳动者可以解除。'
    >>> strip_list("1.5倍工资")
    '1.5倍工资'
    """
    return _LIST_RE.sub("", sentence, count=1).replace("**", "")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pairs", help="pairs to label from an eval-answers answers.json")
    p.add_argument("answers", type=Path)
    p.add_argument("--out", type=Path, required=True)
    m = sub.add_parser("merge", help="join pair files with two reviewers' label files")
    m.add_argument("--pairs", type=Path, nargs="+", required=True)
    m.add_argument("--a", type=Path, nargs="+", required=True, help="reviewer A's labels")
    m.add_argument("--b", type=Path, nargs="+", required=True, help="reviewer B's labels")
    m.add_argument("--out", type=Path, required=True)
    m.add_argument("--key", type=Path, help="the key of `blind`: labels are by blind id")
    bl = sub.add_parser("blind", help="the pairs as reviewers read them, shuffled, with a key")
    bl.add_argument("pairs", type=Path)
    bl.add_argument("--out", type=Path, required=True)
    bl.add_argument("--key", type=Path, required=True)
    bl.add_argument("--seed", type=int, default=0)
    f = sub.add_parser("fit", help="fit and report on labelled pairs")
    f.add_argument("labels", type=Path)
    f.add_argument("--precision", type=float, default=0.97,
                   help="precision to reach on the fit part (default 0.97: a margin over "
                        "the 0.95 target for the held-out part)")
    f.add_argument("--write", action="store_true", help="write src/legalrag/data/support.json")
    f.add_argument("--strip-list", action="store_true",
                   help="drop a list item's number and bold heading (1. **直接回答**：) from "
                        "every sentence first (measured, not kept; cannot be written)")
    t = sub.add_parser("test", help="a fitted model on labelled pairs it was not fitted on")
    t.add_argument("labels", type=Path)
    t.add_argument("--first-row", type=int, default=0,
                   help="only the pairs from this row of the file on (a later batch)")
    t.add_argument("--model", type=Path,
                   help="a support.json (default: the shipped src/legalrag/data/support.json)")
    t.add_argument("--part", choices=("fit", "held_out"),
                   help="only the pairs of this part of the calibration file (part_of)")
    t.add_argument("--no-quote-rule", action="store_true",
                   help="leave quotations of whole clauses to the score (the decision before "
                        "quotes_clauses)")
    args = ap.parse_args()
    if args.cmd == "test":
        model = (SupportModel.from_dict(json.loads(args.model.read_text(encoding="utf-8")))
                 if args.model else SupportModel.default())
        rows = load_labelled(args.labels)[args.first_row:]
        if args.part:
            rows = [r for r in rows if part_of(r["question_id"]) == args.part]
        print(json.dumps(test(rows, model, default_embed(), not args.no_quote_rule),
                         ensure_ascii=False, indent=1))
        return 0
    if args.cmd == "pairs":
        pairs = make_pairs(args.answers, corpus_facts())
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in pairs),
                            encoding="utf-8")
        print(f"{len(pairs)} pairs from {len({r['question_id'] for r in pairs})} answers "
              f"-> {args.out}")
        return 0
    if args.cmd == "blind":
        rows, key = blind(_jsonl(args.pairs), args.seed)
        args.out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                            encoding="utf-8")
        args.key.write_text(json.dumps(key, indent=0) + "\n", encoding="utf-8")
        print(f"{len(rows)} pairs -> {args.out}; key -> {args.key}")
        return 0
    if args.cmd == "merge":
        key = json.loads(args.key.read_text(encoding="utf-8")) if args.key else None

        def unblind(labels: list[dict]) -> list[dict]:
            return [{**r, "pair": key[r["pair"]]} for r in labels] if key else labels

        rows, stats = merge([r for p in args.pairs for r in _jsonl(p)],
                            unblind([r for p in args.a for r in _jsonl(p)]),
                            unblind([r for p in args.b for r in _jsonl(p)]))
        args.out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                            encoding="utf-8")
        print(json.dumps(stats, ensure_ascii=False))
        return 0
    rows = load_labelled(args.labels)
    if args.strip_list:
        if args.write:
            ap.error("--strip-list is a measurement: the product's claim_text keeps list markup")
        rows = [{**r, "sentence": strip_list(r["sentence"])} for r in rows]
    model, report = fit(rows, default_embed(), args.precision)
    print(json.dumps(report, ensure_ascii=False, indent=1))
    if args.write:
        target = ROOT / "src" / "legalrag" / "data" / "support.json"
        target.write_text(json.dumps({**model.to_dict(), "report": report}, ensure_ascii=False,
                                     indent=1) + "\n", encoding="utf-8")
        print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
