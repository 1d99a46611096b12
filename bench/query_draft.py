"""Query drafting with the local chat model (issue 13, the optional lever): the model writes
the question's legal issue and rule in statute words, and retrieval searches with that too.

    .venv/bin/python bench/query_draft.py draft DRAFTS.jsonl [--split dev] [-n 235]
    .venv/bin/python bench/query_draft.py eval DRAFTS.jsonl --encoders DIR [--out FILE]

`draft` asks the configured chat model (the default Qwen2.5-Coder-1.5B) once per question,
greedy, at most 80 tokens, and appends {"id", "draft", "seconds", "tokens"} to DRAFTS.jsonl;
a rerun continues where it stopped. The draft may name a law, but any article number in it
is cut before it is searched: the product looks up a cited article exactly and puts it
first, and a number the model made up would then lead the list.

`eval` retrieves every drafted question four ways and scores them against the gold
articles: the question alone (today), the draft alone, question and draft joined as one
query, and the question's ranking fused with the joined query's by reciprocal rank
(1/(60 + rank), the joined list weighted w). Tune questions are retrieved by the query
encoder of the other half of the tune part (bench/tune_fusion.py's fold encoders, DIR),
without the cross-encoder stage, which learned them; dev questions by the product as it
ships. Nothing is fitted on dev.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

SYSTEM = "你是一名熟悉中国法律的助手。"
ASK = ("下面是一个人提出的法律问题。请用法律条文的措辞，写出这个问题涉及的法律问题和适用的法律规则"
       "（可以写出法律名称，不写条文序号），不超过80字，只写规则本身。\n\n问题：{query}")
_ARTICLE_NO = re.compile(r"第[〇零一二三四五六七八九十百千0-9]+条(?:之[一二三四五六七八九十]+)?")
# The headings the model puts before its two parts (the words of the request).
_HEADINGS = re.compile(r"(?:问题)?涉及的法律问题[：:]?|适用的法律规则[：:]?|解释[：:]")
KS = (1, 3, 5, 10, 20, 100)
WEIGHTS = (0.25, 0.5, 1.0)
RRF_K = 60


def usable(draft: str) -> str:
    """The draft as a query: article numbers and headings cut, whitespace folded."""
    return " ".join(_HEADINGS.sub(" ", _ARTICLE_NO.sub("", draft)).split())


def questions(path: Path, split: str | None) -> list:
    from legalrag.index.tune import split_of
    from legalrag.retrieval.evaluate import load_queries

    return [q for q in load_queries(path) if split is None or split_of(q.id) == split]


def draft(args) -> int:
    from legalrag.answer.llm import load_chat_model
    from legalrag.answer.llm.base import Message
    from legalrag.config import Settings

    done = set()
    if args.drafts.exists():
        done = {json.loads(x)["id"] for x in args.drafts.read_text("utf-8").splitlines() if x}
    todo = [q for q in questions(args.queries, args.split)[:args.n] if q.id not in done]
    model = load_chat_model(Settings.load())
    t0 = time.perf_counter()
    with args.drafts.open("a", encoding="utf-8") as f:
        for i, q in enumerate(todo, 1):
            start = time.perf_counter()
            gen = model.stream([Message("system", SYSTEM),
                                Message("user", ASK.format(query=q.query))], max_tokens=80)
            text = gen.text()
            f.write(json.dumps({"id": q.id, "draft": text.strip(),
                                "seconds": round(time.perf_counter() - start, 3),
                                "tokens": model.count_tokens(text)},
                               ensure_ascii=False) + "\n")
            f.flush()
            if i % 25 == 0:
                print(f"{i} of {len(todo)}, {time.perf_counter() - t0:.0f} s", file=sys.stderr,
                      flush=True)
    return 0


def fuse(lists: list[tuple[list, float]], k: int) -> list:
    score: dict = {}
    for keys, w in lists:
        for rank, key in enumerate(keys, 1):
            score[key] = score.get(key, 0.0) + w / (RRF_K + rank)
    return sorted(score, key=lambda key: -score[key])[:k]


def evaluate(args) -> int:
    import numpy as np
    from tune_fusion import fold_encoders, fold_of

    from legalrag.config import Settings
    from legalrag.index.tune import split_of
    from legalrag.retrieval.evaluate import mean_metrics, query_metrics, resolve_gold
    from legalrag.retrieval.retriever import Retriever

    drafts = {}
    for line in args.drafts.read_text("utf-8").splitlines():
        if line:
            row = json.loads(line)
            drafts[row["id"]] = row
    qs = [q for q in questions(args.queries, None) if q.id in drafts]
    product = Retriever.open(Settings.load())
    bare = Retriever(product.build_dir, replace(product.settings, cross_encoder=""),
                     verify=False, fusion=product.fusion)
    raw = [{"id": q.id, "query": q.query, "relevant": q.relevant}
           for q in questions(args.queries, None)]
    folds = [Retriever(product.build_dir, replace(bare.settings, query_encoder=str(p)),
                       verify=False, fusion=product.fusion)
             for p in fold_encoders(bare, raw, args.encoders)]
    variants = ["question", "draft", "joined", *(f"fused w={w}" for w in WEIGHTS)]
    per: dict[str, dict[str, list]] = {"tune": {v: [] for v in variants},
                                       "dev": {v: [] for v in variants}}
    seconds = {"tune": [], "dev": []}
    for q in qs:
        part = split_of(q.id)
        r = folds[fold_of(q.id)] if part == "tune" else product
        golds = [resolve_gold(c, product) for c in q.relevant]
        keys = [g.key for g in golds]
        text = usable(drafts[q.id]["draft"])
        seconds[part].append(drafts[q.id]["seconds"])

        def ranked(query: str, r=r) -> list:
            hits = r.search(query, k=100, mode="hybrid")
            return [(h.article.law, h.article.number, h.article.suffix) for h in hits]

        lists = {"question": ranked(q.query)}
        lists["draft"] = ranked(text) if text else lists["question"]
        lists["joined"] = ranked(f"{q.query}\n{text}") if text else lists["question"]
        for w in WEIGHTS:
            lists[f"fused w={w}"] = fuse([(lists["question"], 1.0), (lists["joined"], w)], 100)
        for v in variants:
            first = {key: pos for pos, key in reversed(list(enumerate(lists[v], 1)))}
            ranks = tuple(first.get(key) if key else None for key in keys)
            per[part][v].append(query_metrics(ranks, KS))
    out = {}
    for part in ("tune", "dev"):
        if not seconds[part]:
            continue
        s = np.asarray(seconds[part])
        out[part] = {"n": len(s), "draft_seconds_p50": round(float(np.median(s)), 2),
                     "draft_seconds_p95": round(float(np.percentile(s, 95)), 2),
                     "variants": {v: {k: round(x, 4) for k, x in mean_metrics(per[part][v]).items()}
                                  for v in variants}}
    text = json.dumps(out, ensure_ascii=False, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    d = sub.add_parser("draft", help="write a draft per question with the chat model")
    d.add_argument("drafts", type=Path)
    d.add_argument("--queries", type=Path, default=ROOT / "data/eval/stard_train.jsonl")
    d.add_argument("--split", choices=("tune", "dev"), default="dev")
    d.add_argument("-n", type=int, default=235, help="first n questions of the split")
    e = sub.add_parser("eval", help="retrieve with and without the drafts")
    e.add_argument("drafts", type=Path)
    e.add_argument("--queries", type=Path, default=ROOT / "data/eval/stard_train.jsonl")
    e.add_argument("--encoders", type=Path, required=True, help="fold encoders (tune_fusion)")
    e.add_argument("--out", type=Path)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return draft(args) if args.command == "draft" else evaluate(args)


if __name__ == "__main__":
    sys.exit(main())
