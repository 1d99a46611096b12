"""The cross-encoder of bench/train_cross.py, trained and judged out of fold (issue 13).

    .venv/bin/python bench/train_cross_oof.py --encoders DIR [--cache FILE] [--layers 2]
        [--init-encoders] [--max-len 96] [--depth 20 [30 ...]] [--passages] [--headings]
        [--epochs 2] [--soup N] [--extra WRITTEN.jsonl --extra-cache FILE] [--save FILE]
        [--out FILE]

bench/train_cross.py trained on tune questions retrieved by the index's own query encoder,
which learned them: a gold article was in their top 20 far more often than it will be for a
new question, and the fusion weight chosen on them was too shy. Here every tune question is
retrieved by a query encoder trained on the *other* half of the tune part (the fold encoders
of bench/tune_fusion.py), through the product's whole search (reranker, lookups,
cross-references), so its hits look like a new question's.

1. Cross-fitting: a cross-encoder trained on fold 1's questions scores fold 0's, and the
   other way round. Every tune question then has hits and cross-encoder scores that nothing
   trained on it produced, and the fusion weight is chosen on all 1,000 of them.
2. A final cross-encoder is trained on all 1,000 and scores the dev part (235 questions
   nothing was chosen on), retrieved by the product as it is.

Over the top `depth` hits (below them nothing moves) the order is either fused by ranks as in
bench/train_cross.py, 1/(10 + product rank) + w/(10 + cross rank), or by scores, the
reranker's score (with the article prior) + a * the cross-encoder's. The kind and its weight
are chosen out of fold (by R@5 + R@10 + MRR@10); --ship writes them into the model file.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 4.0, 1000.0)
SCORE_WEIGHTS = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0)


def collect(queries: list, encoders: Path, depth: int) -> list[dict]:
    from tune_fusion import fold_encoders, fold_of

    from legalrag.config import Settings
    from legalrag.index.tune import split_of
    from legalrag.retrieval.evaluate import resolve_gold
    from legalrag.retrieval.retriever import Retriever

    # The hits the stage will reorder: the product's search *without* the stage. With it on
    # (the default since the stage shipped), the tune questions would come back already
    # reordered by a cross-encoder trained on them, and out of fold would mean nothing.
    product = Retriever.open(replace(Settings.load(), cross_encoder=""))
    raw = [{"id": q.id, "query": q.query, "relevant": q.relevant} for q in queries]
    folds = [Retriever(product.build_dir, replace(product.settings, query_encoder=str(p)),
                       verify=False, fusion=product.fusion)
             for p in fold_encoders(product, raw, encoders)]
    rows = []
    t0 = time.perf_counter()
    for i, q in enumerate(queries):
        part = split_of(q.id)
        r = folds[fold_of(q.id)] if part == "tune" else product
        golds = [resolve_gold(c, product) for c in q.relevant]
        gold = {(g.law, g.number, g.suffix) for g in golds if g.resolved}
        hits = r.search(q.query, k=depth, mode="hybrid")
        rows.append({"id": q.id, "part": part, "fold": fold_of(q.id), "query": q.query,
                     "gold": gold, "n": len(q.relevant),
                     "hits": [((h.article.law, h.article.number, h.article.suffix),
                               h.article.citation + "\n" + h.article.text) for h in hits],
                     # None: a hit joined by a reference, outside the reranker's pool
                     "rerank": [h.scores.get("rerank") for h in hits]})
        if (i + 1) % 100 == 0:
            print(f"{i + 1} questions, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return rows


def collect_extra(path: Path, depth: int) -> list[dict]:
    """Written questions (bench/gen_questions.py: one question per article, by the local
    model) retrieved by the product without the stage, as more rows to train on. None of
    them is a STARD question, so no fold needs to be kept from them."""
    from gen_questions import keep

    from legalrag.config import Settings
    from legalrag.retrieval.retriever import Retriever

    product = Retriever.open(replace(Settings.load(), cross_encoder=""))
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        d = json.loads(line)
        if not keep(d["question"]):
            continue
        hits = product.search(d["question"], k=depth, mode="hybrid")
        rows.append({"id": f"extra-{n}", "part": "extra", "fold": -1, "query": d["question"],
                     "gold": {tuple(d["key"])}, "n": 1,
                     "hits": [((h.article.law, h.article.number, h.article.suffix),
                               h.article.citation + "\n" + h.article.text) for h in hits],
                     "rerank": [h.scores.get("rerank") for h in hits]})
    return rows


def fused_order(row: dict, ce: list[float], w: float, a: float) -> list[int]:
    """Hit positions in the order the product gives them: a > 0, the reranker's score + a *
    the cross-encoder's over the scored hits (a hit joined by a reference, without a
    reranker score, counts as the lowest); else ranks fused with weight w."""
    from train_cross import fused

    if a <= 0:
        return fused(len(row["hits"]), ce, w)
    s = row["rerank"][:len(ce)]
    low = min((v for v in s if v is not None), default=0.0)
    joined = [(low if v is None else v) + a * c for v, c in zip(s, ce, strict=True)]
    return sorted(range(len(ce)), key=lambda i: (-joined[i], i)) + \
        list(range(len(ce), len(row["hits"])))


def metrics(rows: list[dict], ces: list[list[float]], w: float, a: float = 0.0
            ) -> dict[str, float]:
    out = {"hit@1": 0.0, "hit@3": 0.0, "hit@5": 0.0, "recall@5": 0.0, "recall@10": 0.0,
           "mrr@10": 0.0}
    for r, ce in zip(rows, ces, strict=True):
        order = [r["hits"][i][0] for i in fused_order(r, ce, w, a)]
        gold, n = r["gold"], max(1, r["n"])
        for k in (1, 3, 5):
            out[f"hit@{k}"] += bool(gold & set(order[:k]))
        out["recall@5"] += min(1.0, len(gold & set(order[:5])) / n)
        out["recall@10"] += min(1.0, len(gold & set(order[:10])) / n)
        out["mrr@10"] += next((1 / (i + 1) for i, key in enumerate(order[:10]) if key in gold),
                              0.0)
    return {k: round(v / len(rows), 4) for k, v in out.items()} | {"n": len(rows)}


def fit(rows: list[dict], args, seed: int, member: int = 0):
    """One cross-encoder trained on rows. Members of a soup (--soup) start from the same
    weights (the head is drawn with `seed`) and differ in the order of their examples,
    their negatives and their dropout; member 0 is the model trained without --soup."""
    import torch
    from train_cross import Cross, train

    torch.manual_seed(seed)
    model = Cross(args.max_len, args.layers)
    if args.init_encoders:
        start_from_encoder(model, init_encoder(args.encoders, seed))
    if member:
        torch.manual_seed(1000 * seed + member)
    # negatives from the hits the product shows and a little below
    train(model, rows, args.epochs, args.negatives, args.lr,
          seed=1000 * seed + member if member else seed)
    return model


def init_encoder(encoders: Path, seed: int) -> Path:
    """The query encoder that learned the same questions as the cross-encoder `fit` trains
    with this seed: fold i's cross-encoder learns the questions outside fold i, as the fold
    encoder encoders/fold{i} did; the final one (seed 2) learns all of them, as the index's
    query encoder did."""
    if seed in (0, 1):
        return encoders / f"fold{seed}"
    from legalrag.config import Settings
    from legalrag.retrieval.retriever import Retriever

    return Path(Retriever.open(Settings.load()).query_encoder)


def start_from_encoder(model, path: Path) -> None:
    """--init-encoders: the cross-encoder's layers, position and type embeddings start from
    a tuned query encoder's instead of the base model's. The word embeddings stay the base
    model's, because the product reads them from the installed m3e-small (FROZEN)."""
    from transformers import AutoModel

    tuned = AutoModel.from_pretrained(str(path)).state_dict()
    own = model.bert.state_dict()
    taken = {k: v for k, v in tuned.items()
             if k in own and "word_embeddings" not in k and not k.startswith("pooler.")}
    model.bert.load_state_dict(taken, strict=False)
    print(f"cross-encoder starts from {path} ({len(taken)} tensors)", file=sys.stderr)


def soup(models: list):
    """One model whose every weight is the mean of the models' (a weight-averaged "model
    soup"): it costs what one model costs to run. The models must share their start."""
    import torch

    out = models[0]
    for part in ("bert", "head"):
        states = [getattr(m, part).state_dict() for m in models]
        mean = {k: torch.stack([st[k] for st in states]).mean(0)
                if v.is_floating_point() else v for k, v in states[0].items()}
        getattr(out, part).load_state_dict(mean)
    return out


def members_scores(rows: list[dict], args, seed: int, scored: list[dict], depth: int
                   ) -> dict[str, list[list[float]]]:
    """The scores of `scored` by the first member alone, by the mean of the members'
    scores (an ensemble) and by their soup; only the first with --soup 1."""
    from train_cross import score_rows

    members = [fit(rows, args, seed, m) for m in range(args.soup)]
    out = {"single": score_rows(members[0], scored, depth)}
    if args.soup > 1:
        each = [out["single"]] + [score_rows(m, scored, depth) for m in members[1:]]
        out["ensemble"] = [[sum(xs) / len(xs) for xs in zip(*qs, strict=True)]
                           for qs in zip(*each, strict=True)]
        out["soup"] = score_rows(soup(members), scored, depth)
    out["_model"] = members[0]  # the soup when there is one (soup() wrote into it)
    return out


def ship(model, path: Path, args, weight: float, depth: int, rows: list[dict],
         score_weight: float = 0.0) -> dict:
    """Write the model as the product reads it (retrieval/cross.py): the encoder's weights
    without the word embeddings (the installed m3e-small's, frozen in training) and the
    pooler (unused), and the head; its matrices in int8. The written file is then loaded
    as the product loads it and must score `rows` as the trained model does (Pearson
    r >= 0.999 on every question, the same best hit on >= 95%), or it is removed."""
    import numpy as np
    from train_cross import score_rows

    from legalrag.retrieval.cross import CrossEncoder, read_cross, write_cross

    state = {k: v.detach().numpy() for k, v in model.bert.state_dict().items()
             if not k.startswith("pooler.")}  # write_cross leaves the word embeddings out
    state |= {f"head.{k}": v.detach().numpy() for k, v in model.head.state_dict().items()}
    write_cross(path, state, config(args, weight, depth, score_weight))
    shipped = CrossEncoder(*read_cross(path))
    trained = score_rows(model, rows, depth)
    r, same = [], 0
    for row, ref in zip(rows, trained, strict=True):
        got = shipped.scores(row["query"], [t for _, t in row["hits"][:depth]])
        r.append(float(np.corrcoef(ref, got)[0, 1]))
        same += int(np.argmax(ref) == np.argmax(got))
    check = {"questions": len(rows), "min_pearson": min(r), "same_best": same / len(rows)}
    print(f"shipped file {path}: {check}", file=sys.stderr)
    if check["min_pearson"] < 0.999 or check["same_best"] < 0.95:
        path.unlink()
        raise SystemExit(f"the int8 file disagrees with the trained model ({check}): "
                         "not written")
    return check


def config(args, weight: float = 0.0, depth: int = 0, score_weight: float = 0.0):
    from legalrag.retrieval.cross import CrossConfig

    return CrossConfig("m3e-small", args.layers, args.max_len, depth or max(args.depth), weight,
                       args.passages, args.headings, score_weight)


def by_sum(m: dict) -> float:
    return m["recall@5"] + m["recall@10"] + m["mrr@10"]


def fusion_grid(depths: list[int], rows: list[dict], ces: list[list[float]]) -> dict:
    """{(depth, w, a): metrics}: ranks fused with each of WEIGHTS (a = 0), then the scores
    added with each of SCORE_WEIGHTS, w then being the best rank weight at that depth (what
    the product falls back to for hits without reranker scores)."""
    cv = {(d, w, 0.0): metrics(rows, [ce[:d] for ce in ces], w) for d in depths for w in WEIGHTS}
    for d in depths:
        w = max((g for g in cv if g[0] == d), key=lambda g: by_sum(cv[g]))[1]
        cv |= {(d, w, a): metrics(rows, [ce[:d] for ce in ces], w, a) for a in SCORE_WEIGHTS}
    return cv


def as_read(rows: list[dict], args) -> list[dict]:
    """The rows with each hit's text as the cross-encoder of args reads it
    (retrieval/cross.py: with --passages a long article's sentences nearest the question,
    with --headings its part and chapter titles after the citation)."""
    from transformers import AutoTokenizer

    from legalrag.config import Settings
    from legalrag.index.embed import embedding_model_dir
    from legalrag.retrieval.cross import pair_texts
    from legalrag.retrieval.retriever import Retriever

    tok = AutoTokenizer.from_pretrained(str(embedding_model_dir("m3e-small")))
    articles = {(a.law, a.number, a.suffix, a.citation + "\n" + a.text): a
                for a in Retriever.open(Settings.load()).articles}
    out = []
    for r in rows:
        texts = pair_texts(tok, config(args), r["query"],
                           [articles[(*key, t)] for key, t in r["hits"]])
        out.append({**r, "hits": [(k, t) for (k, _), t in zip(r["hits"], texts, strict=True)]})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--queries", type=Path, default=ROOT / "data/eval/stard_train.jsonl")
    ap.add_argument("--encoders", type=Path, required=True,
                    help="the two fold encoders of bench/tune_fusion.py (trained if missing)")
    ap.add_argument("--cache", type=Path, help="keep the retrieved hits here (pickle)")
    ap.add_argument("--out", type=Path, help="write the results here (JSON)")
    ap.add_argument("--save", type=Path, help="keep the final model's weights here")
    ap.add_argument("--dump", type=Path,
                    help="keep every question's hits and cross-encoder scores here (pickle; "
                         "out of fold for tune questions) to try other fusions offline")
    ap.add_argument("--ship", type=Path,
                    help="write the final model for the product here, with the weight chosen "
                         "out of fold (e.g. data/models/cross-m3e-small-2l.npz)")
    ap.add_argument("--collect-depth", type=int, default=30,
                    help="hits kept per question (training negatives come from them)")
    ap.add_argument("--depth", type=int, nargs="+", default=[20],
                    help="hits the cross-encoder reorders; several (e.g. 20 30) are judged "
                         "from the same models, and chosen out of fold with the weight")
    ap.add_argument("--layers", type=int, default=2, help="encoder layers kept (0: all)")
    ap.add_argument("--init-encoders", action="store_true",
                    help="start each cross-encoder from the query encoder that learned the "
                    "same questions (the fold encoders, then the index's) instead of m3e-small")
    ap.add_argument("--max-len", type=int, default=96)
    ap.add_argument("--negatives", type=int, default=7)
    ap.add_argument("--passages", action="store_true",
                    help="read a long article by its sentences nearest the question")
    ap.add_argument("--headings", action="store_true",
                    help="read the titles of an article's part and chapter with its citation")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--extra", type=Path,
                    help="written questions (bench/data/written_questions.jsonl) added to "
                         "every model's training rows")
    ap.add_argument("--extra-cache", type=Path, help="keep the written questions' hits here")
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--soup", type=int, default=1,
                    help="train this many models from the same start and average their "
                         "weights (what --ship writes); also reports their scores' mean")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from train_cross import score_rows

    from legalrag.retrieval.evaluate import load_queries

    torch.set_num_threads(args.threads)
    from tune_fusion import cached

    rows = cached(args.cache, lambda: collect(load_queries(args.queries), args.encoders,
                                              args.collect_depth))
    rows = as_read(rows, args)
    tune = [r for r in rows if r["part"] == "tune"]
    dev = [r for r in rows if r["part"] == "dev"]
    extra = []
    if args.extra:
        extra = as_read(cached(args.extra_cache, lambda: collect_extra(
            args.extra, args.collect_depth)), args)
        print(f"{len(extra)} written questions, gold in the hits of "
              f"{sum(bool(r['gold'] & {k for k, _ in r['hits']}) for r in extra)}",
              file=sys.stderr)
    t_all = time.perf_counter()
    oof_rows, oof = [], {}
    for fold in (0, 1):
        scored = [r for r in tune if r["fold"] == fold]
        got = members_scores([r for r in tune if r["fold"] != fold] + extra, args, fold, scored,
                             max(args.depth))
        oof_rows += scored
        for kind, ce in got.items():
            if kind != "_model":
                oof.setdefault(kind, []).extend(ce)
        print(f"fold {fold} done, {time.perf_counter() - t_all:.0f} s", file=sys.stderr)
    # --soup N: the soup is what would ship (one model's cost); the single model and the
    # ensemble of the members' scores are reported beside it
    kind = "soup" if args.soup > 1 else "single"
    oof_ce = oof[kind]
    # scores of the best max(depth) hits; a smaller depth reorders the first of them only
    cv = fusion_grid(args.depth, oof_rows, oof_ce)
    grid = list(cv)
    chosen = max(grid, key=lambda g: by_sum(cv[g]))  # a tie goes to ranks, the smaller depth
    t0 = time.perf_counter()
    final_scores = members_scores(tune + extra, args, 2, dev, max(args.depth))
    final = final_scores.pop("_model")
    train_s = time.perf_counter() - t0
    if args.save:
        final.save(args.save)
    check = (ship(final, args.ship, args, chosen[1], chosen[0], dev[:100], chosen[2])
             if args.ship else None)
    t0 = time.perf_counter()
    dev_ce = score_rows(final, dev, max(args.depth))
    per_q_ms = 1000 * (time.perf_counter() - t0) / len(dev)
    if args.dump:
        args.dump.write_bytes(pickle.dumps(
            {"tune": [(r, ce) for r, ce in zip(oof_rows, oof_ce, strict=True)],
             "dev": [(r, ce) for r, ce in zip(dev, dev_ce, strict=True)]}))
    table = [{"depth": g[0], "w": g[1], "score_weight": g[2], "tune_oof": cv[g],
              "dev": metrics(dev, [ce[:g[0]] for ce in dev_ce], g[1], g[2])} for g in grid]
    # every kind of score (single, ensemble, soup), each at its own weight chosen out of fold
    kinds = {}
    for name, ce_oof in oof.items():
        cv_k = fusion_grid(args.depth, oof_rows, ce_oof)
        best = max(cv_k, key=lambda g, cv_k=cv_k: by_sum(cv_k[g]))
        kinds[name] = {"depth": best[0], "w": best[1], "score_weight": best[2],
                       "tune_oof": cv_k[best],
                       "dev": metrics(dev, [ce[:best[0]] for ce in final_scores[name]],
                                      best[1], best[2])}
        print(f"{name:>8} (depth {best[0]}, w {best[1]}, a {best[2]}): oof "
              f"{kinds[name]['tune_oof']} | dev {kinds[name]['dev']}")
    for t in table:
        a, d = t["tune_oof"], t["dev"]
        mark = "  <- chosen out of fold" if (t["depth"], t["w"], t["score_weight"]) == chosen \
            else ""
        how = f"a {t['score_weight']:>4}" if t["score_weight"] else f"w {t['w']:>6}"
        print(f"depth {t['depth']} {how}: oof H@1 {a['hit@1']:.3f} H@5 {a['hit@5']:.3f} "
              f"R@5 {a['recall@5']:.3f} R@10 {a['recall@10']:.3f} MRR {a['mrr@10']:.3f} | "
              f"dev H@1 {d['hit@1']:.3f} H@5 {d['hit@5']:.3f} R@5 {d['recall@5']:.3f} "
              f"R@10 {d['recall@10']:.3f} MRR {d['mrr@10']:.3f}{mark}")
    print(f"final model trained in {train_s:.0f} s on {len(tune)} questions; scoring "
          f"{per_q_ms:.0f} ms per question ({max(args.depth)} hits, {args.max_len} tokens, "
          f"{args.layers or 'all'} layers, {args.threads} threads)")
    if args.out:
        settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
        result = {"settings": settings, "final_train_seconds": train_s,
                  "score_ms_per_question": per_q_ms, "chosen_depth": chosen[0],
                  "chosen_w": chosen[1], "chosen_score_weight": chosen[2],
                  "ship_check": check,
                  "table": table, "kinds": kinds}
        args.out.write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
