"""Choose how the provision (the paragraph quoted before the model speaks) is picked, on the
STARD tune part; report dev beside. No chat model runs: only retrieval and the passage score.

    LEGALRAG_INDEX_DIR=... .venv/bin/python bench/tune_provision.py [--cache FILE] [--out FILE]

For every question the product's retrieval runs once (the answer's top k sources, as the
assistant searches), and every passage of those sources is scored once: its cosine to the
question and the share of the question's bigrams it holds (legalrag.answer.provision).
Then the choice is replayed for a grid of settings:

- weight: the bigram share's weight beside the cosine (BIGRAM_WEIGHT);
- decay: the score discount per retrieval rank (RANK_DECAY);
- top: from how many of the best sources the provision may come (PROVISION_FROM);
- second: a second provision, from another article, is quoted when its score reaches this
  share of the first's (0 = never);
- tuned: with --encoders, the share of the cosine taken from the index's tuned query
  encoder (the question through it, the passage through the base model, as the index
  compares them) instead of the base model's;
- idf (with --idf): the share of the bigram term taken from an idf-weighted share, each of
  the question's bigrams counted by its inverse document frequency over the in-force
  articles, so that 拖欠 and 辞职 weigh more than 可以 and 个月.

The index's query encoder learned the tune questions, so it retrieves their gold articles
better than a new question's (gold among the five sources: 85% of tune questions, 68% of
dev), and the tuned cosine scores them better too: settings chosen there would trust the
retrieval order and that cosine too much. With --encoders DIR the tune questions are
retrieved and scored out of fold: each by the product's pipeline over an encoder trained on
the other half of the tune part (bench/tune_fusion.py's two fold encoders, trained once
and kept in DIR). Dev questions get the index's own encoder, as the product would.

A question counts when a quoted provision's article is gold (same law, number and suffix,
as eval-answers counts gold_quoted). The objective is that share on the tune part; the
number of quoted articles is reported beside it, since quoting more is not the goal. Dev
questions (legalrag.index.tune.split_of) are never used to choose, only reported.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def collect(queries: list, limit: int | None, encoders: Path | None = None,
            plain: bool = False) -> list[dict]:
    """Per question: its part, the gold keys, and per passage (rank, article key, cosine,
    bigram share, tuned cosine, idf-weighted bigram share); the tuned cosine is the base
    one without --encoders. The paragraphs are scored against the question as the product
    scores them (with the glossary's terms unless it names an article), or as written
    with plain."""
    from dataclasses import replace

    from legalrag.answer.assistant import Assistant
    from legalrag.answer.provision import bigrams, split_passages
    from legalrag.config import Settings
    from legalrag.index.tune import split_of
    from legalrag.retrieval.evaluate import resolve_gold

    settings = Settings.load()
    assistant = Assistant(settings)
    retriever = assistant.retriever
    embed = assistant.passages.embed
    searchers = {"dev": retriever}  # tune questions: the fold whose encoder never saw them
    if encoders is not None:
        sys.path.insert(0, str(ROOT / "bench"))
        from tune_fusion import fold_encoders, fold_of

        from legalrag.retrieval.retriever import Retriever
        raw = [{"id": q.id, "query": q.query, "relevant": q.relevant} for q in queries]
        for fold, path in enumerate(fold_encoders(retriever, raw, encoders)):
            # Without the cross-encoder stage: it was trained on these tune questions and
            # would put their gold first as it will not for a new question.
            searchers[fold] = Retriever(retriever.build_dir,
                                        replace(settings, query_encoder=str(path),
                                                cross_encoder=""),
                                        verify=False)
    idf = bigram_idf(retriever.articles)
    rows = []
    t0 = time.perf_counter()
    for i, q in enumerate(queries[:limit] if limit else queries):
        part = split_of(q.id)
        searcher = (retriever if encoders is None or part == "dev"
                    else searchers[fold_of(q.id)])
        golds = [resolve_gold(c, retriever) for c in q.relevant]
        gold = {(g.law, g.number, g.suffix) for g in golds if g.resolved}
        hits = searcher.search(q.query, k=settings.answer_top_k, mode=settings.retrieval_mode,
                               include_old=settings.include_old_versions)
        passages = [(r, p) for r, h in enumerate(hits) for p in split_passages(h.article)]
        texts = [p.lead + p.text for _, p in passages]
        named = any("lookup" in h.ranks for h in hits)
        said = (q.query if plain or named or retriever.glossary is None
                else retriever.glossary.expand(q.query))
        if texts:
            vectors = embed([said, *texts])
            cosines = (vectors[1:] @ vectors[0]).tolist()
            tcos = (cosines if encoders is None
                    else (vectors[1:] @ searcher.embedder.encode([said])[0]).tolist())
        else:
            cosines = tcos = []
        asked = bigrams(said)
        weights = {b: idf[b] for b in asked if b in idf}
        total = sum(weights.values())
        feats = []
        for (r, p), text, cos, tc in zip(passages, texts, cosines, tcos, strict=True):
            found = bigrams(text)
            share = len(asked & found) / len(asked) if asked else 0.0
            rare = sum(w for b, w in weights.items() if b in found) / total if total else 0.0
            a = p.article
            feats.append((r, (a.law, a.number, a.suffix), cos, share, tc, rare))
        rows.append({"id": q.id, "part": part, "gold": gold, "passages": feats})
        if (i + 1) % 100 == 0:
            print(f"{i + 1} questions, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return rows


def bigram_idf(articles) -> dict[str, float]:
    """log(1 + (N - df + 0.5) / (df + 0.5)) of every bigram of the in-force articles."""
    import math
    from collections import Counter

    from legalrag.vocab import bigrams

    df: Counter = Counter()
    texts = [a.text for a in articles if a.in_force]
    for text in texts:
        df.update(bigrams(text))
    n = len(texts)
    return {b: math.log1p((n - c + 0.5) / (c + 0.5)) for b, c in df.items()}


def choose(feats, weight: float, decay: float, top: int, second: float,
           tuned: float = 0.0, idf: float = 0.0) -> list[tuple]:
    """The articles quoted for one question under one setting."""
    scored = sorted((((1 - tuned) * cos + tuned * tc
                      + weight * ((1 - idf) * share + idf * rare)) * decay ** r, r, key)
                    for r, key, cos, share, tc, rare in feats if r < top)
    if not scored:
        return []
    best = scored[-1]
    out = [best[2]]
    if second > 0:
        other = next((s for s in reversed(scored) if s[2] != best[2]), None)
        if other is not None and other[0] >= second * best[0]:
            out.append(other[2])
    return out


def evaluate(rows, part: str, setting) -> dict[str, float]:
    rs = [r for r in rows if r["part"] == part]
    quoted = [choose(r["passages"], *setting) for r in rs]
    gold = sum(bool(set(q) & r["gold"]) for q, r in zip(quoted, rs, strict=True))
    in_sources = sum(bool({f[1] for f in r["passages"]} & r["gold"]) for r in rs)
    return {"gold_quoted": gold / len(rs), "quoted_articles": sum(map(len, quoted)) / len(rs),
            "gold_in_sources": in_sources / len(rs), "n": len(rs)}


def with_references(rows, part: str, setting) -> dict[str, float]:
    """The rule `setting`, and besides its quotes every article a quoted paragraph applies
    (依照本法第三十八条…, provision.referenced), as if that article were quoted too: how
    often such an article is there, how often it is gold, and what it adds."""
    from legalrag.answer.provision import referenced, split_passages
    from legalrag.citations import LawNames
    from legalrag.config import Settings
    from legalrag.retrieval.retriever import Retriever

    retriever = Retriever.open(Settings.load(), verify=False)
    names = LawNames(sorted({a.law for a in retriever.articles}))
    weight, decay, top, _, tuned, *_ = setting

    def article(key):
        found = [a for a in retriever.lookup(*key) if a.in_force]
        return found[0] if found else None

    rs = [r for r in rows if r["part"] == part]
    gold = added = with_refs = refs = refs_gold = 0
    for r in rs:
        quoted = choose(r["passages"], *setting)
        best: dict = {}  # article -> (score, index of its best passage)
        seen: dict = {}
        for rank, key, cos, share, tc, _ in r["passages"]:
            i = seen[key] = seen.get(key, -1) + 1  # passages come in article order
            score = ((1 - tuned) * cos + tuned * tc + weight * share) * decay ** rank
            if rank < top and (key not in best or score > best[key][0]):
                best[key] = (score, i)
        chosen = [split_passages(a)[best[k][1]] for k in quoted
                  if k in best and (a := article(k)) is not None]
        more = [k for a in referenced(chosen, names, retriever.lookup)
                if (k := (a.law, a.number, a.suffix)) not in quoted]
        hit = bool(set(quoted) & r["gold"])
        gold += hit
        if more:
            with_refs += 1
            refs += len(more)
            refs_gold += bool(set(more) & r["gold"])
            added += not hit and bool(set(more) & r["gold"])
    n = len(rs)
    return {"gold_quoted": gold / n, "with_references": (gold + added) / n,
            "questions_with_references": with_refs, "references": refs,
            "questions_with_a_gold_reference": refs_gold,
            "articles_added": refs / n, "n": n}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--queries", type=Path, default=ROOT / "data/eval/stard_train.jsonl")
    ap.add_argument("--cache", type=Path, help="keep the scored passages here (pickle)")
    ap.add_argument("--out", type=Path, help="write the grid's results here (JSON)")
    ap.add_argument("-n", type=int, help="only the first N questions (a smoke run)")
    ap.add_argument("--references", action="store_true", help="also report the default "
                    "rule with the articles its quotes apply quoted too")
    ap.add_argument("--encoders", type=Path, help="score with the tuned query encoder too, "
                    "the tune questions out of fold; keep the fold encoders here")
    ap.add_argument("--plain", action="store_true", help="score the paragraphs against the "
                    "question as written, without the glossary's terms (before 2026-12-07)")
    ap.add_argument("--idf", action="store_true",
                    help="also try the idf-weighted bigram share (the grid's idf column)")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from tune_fusion import cached

    from legalrag.answer.assistant import PROVISION_FROM
    from legalrag.answer.provision import BIGRAM_WEIGHT, RANK_DECAY, SECOND_PROVISION
    from legalrag.retrieval.evaluate import load_queries

    rows = cached(args.cache, lambda: collect(load_queries(args.queries), args.n,
                                              args.encoders, args.plain))
    grid = list(itertools.product((0.0, 0.25, 0.5, 0.75, 1.0),
                                  (0.8, 0.85, 0.9, 0.93, 0.96, 1.0),
                                  (1, 2, 3, 5), (0.0,), (0.0,)))
    grid += list(itertools.product((0.25, 0.5, 0.75), (0.85, 0.9, 0.93, 0.96),
                                   (2, 3, 5), (0.8, 0.85, 0.9, 0.95), (0.0,)))
    if args.encoders:
        grid += list(itertools.product((0.25, 0.5, 0.75), (0.85, 0.9, 0.93, 0.96, 1.0),
                                       (2, 3, 5), (0.0, 0.85, 0.9, 0.95),
                                       (0.25, 0.5, 0.75, 1.0)))
    current = (BIGRAM_WEIGHT, RANK_DECAY, PROVISION_FROM, SECOND_PROVISION, 0.0)
    if current not in grid:
        grid.append(current)
    if args.idf:
        grid += list(itertools.product((0.5, 0.75, 1.0, 1.25, 1.5), (0.93, 0.96, 1.0),
                                       (3, 5), (0.8, 0.85, 0.9), (0.0,), (0.5, 1.0)))
    names = ("weight", "decay", "top", "second", "tuned", "idf")
    results = [{"setting": dict(zip(names[:len(s)], s, strict=True)),
                "tune": evaluate(rows, "tune", s), "dev": evaluate(rows, "dev", s)}
               for s in grid]
    one = [r for r in results if r["setting"]["second"] == 0]
    best_one = max(one, key=lambda r: r["tune"]["gold_quoted"])
    best_two = max(results, key=lambda r: (r["tune"]["gold_quoted"]
                                           - 0.1 * r["tune"]["quoted_articles"]))
    now = next(r for r in results if tuple(r["setting"].values()) == current)
    report = [("current", now), ("best, one provision", best_one),
              ("best, up to two (tune gold - 0.1 x articles)", best_two)]
    if args.idf:
        with_idf = [r for r in results if r["setting"].get("idf")]
        report.append(("best with the idf share", max(with_idf, key=lambda r: (
            r["tune"]["gold_quoted"] - 0.1 * r["tune"]["quoted_articles"]))))
        report += [(f"current, idf {m}", next(
            r for r in with_idf if tuple(r["setting"].values()) == (*current, m)))
            for m in (0.5, 1.0)]
    if args.encoders:
        with_tuned = [r for r in results if r["setting"]["tuned"] > 0]
        report.append(("best with the tuned cosine", max(with_tuned, key=lambda r: (
            r["tune"]["gold_quoted"] - 0.1 * r["tune"]["quoted_articles"]))))
        report += [(f"current, tuned {t}", next(
            r for r in with_tuned if tuple(r["setting"].values()) == (*current[:4], t)))
            for t in (0.25, 0.5, 0.75, 1.0)]
    for name, r in report:
        print(f"{name}: {r['setting']}")
        for part in ("tune", "dev"):
            m = r[part]
            print(f"  {part} (n={m['n']}): gold quoted {m['gold_quoted']:.3f}, "
                  f"articles quoted {m['quoted_articles']:.2f}, "
                  f"gold among sources {m['gold_in_sources']:.3f}")
    extra = {}
    if args.references:
        extra = {f"current with references, {part}": with_references(rows, part, current)
                 for part in ("tune", "dev")}
        for name, m in extra.items():
            print(f"{name}: {m}")
    if args.out:
        args.out.write_text(json.dumps({**{name: r for name, r in report}, **extra,
                                        "grid": results},
                                       ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
