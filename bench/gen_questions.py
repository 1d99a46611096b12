"""Write questions a layperson might ask, one per statute article, with the local chat model:
more training questions for the query encoder than the 1,000 of the STARD tune part.

    LEGALRAG_INDEX_DIR=... .venv/bin/python bench/gen_questions.py OUT.jsonl [-n 1500]
        [--minutes 60]

Articles are drawn from the laws the tune part's gold articles come from, each law as often
as it is gold there (民法典 most), in force, at least 30 characters long; the dev part is not
read. The model sees the article (its citation and up to 300 characters) and is asked for
one concrete question from daily life that the article answers, in a layperson's words,
without the law's name or the article's number. A reply is kept only when it is one
question of 8–80 characters, with no 《》, 第N条, line break or
words of the request itself (条文, 普通人). The file is appended to and
a rerun continues where it stopped; each line is {"key": [law, number, suffix], "question",
"article"}. On 2 cores (AVX-512) the default model writes about 25 per minute.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

SYSTEM = "你是一名法律知识出题人。"
ASK = ("阅读下面的法律条文，然后替一个不懂法律的普通人提一个问题：他遇到了条文所说的具体情形，"
       "想知道自己有什么权利、义务或者后果，而这条条文正好能回答。问题要说出具体情形，用日常的话，"
       "不提法律名称和条文序号，一句话，以问号结尾。只写这个问题。"
       "\n\n条文：{citation}\n{text}")
_BAD = re.compile(r"[《》\n]|第[〇零一二三四五六七八九十百千0-9]+条|条文|普通人|权利、义务或者后果")


def keep(reply: str) -> str | None:
    """The reply as a training question, or None when it is not one plain question."""
    line = next((x for x in reply.splitlines() if "？" in x or "?" in x), "")
    q = re.split(r"[:：]", line)[-1].strip().strip("“”\"'").strip()
    if not 8 <= len(q) <= 80 or _BAD.search(q) or q.count("？") + q.count("?") != 1:
        return None
    return q if q.endswith(("？", "?")) else None


def sample_articles(retriever, questions, n: int, seed: int = 0) -> list:
    """n in-force articles, each law drawn as often as it is gold in the tune part."""
    from legalrag.index.tune import split_of
    from legalrag.retrieval.evaluate import resolve_gold

    weight: collections.Counter = collections.Counter()
    for q in questions:
        if split_of(q["id"]) == "tune":
            for citation in q["relevant"]:
                gold = resolve_gold(citation, retriever)
                if gold.resolved:
                    weight[gold.law] += 1
    by_law = collections.defaultdict(list)
    for a in retriever.articles:
        if a.in_force and len(a.text) >= 30:
            by_law[a.law].append(a)
    laws = [law for law in weight if by_law.get(law)]
    rng = random.Random(seed)
    seen: set = set()
    out = []
    while len(out) < n and laws:
        law = rng.choices(laws, weights=[weight[x] for x in laws])[0]
        left = [a for a in by_law[law] if a.id not in seen]
        if not left:
            laws.remove(law)
            continue
        a = rng.choice(left)
        seen.add(a.id)
        out.append(a)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--queries", type=Path, default=ROOT / "data/eval/stard_train.jsonl")
    ap.add_argument("-n", type=int, default=1500, help="articles to ask about")
    ap.add_argument("--minutes", type=float, default=60.0, help="stop after this long")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from legalrag.answer.llm import load_chat_model
    from legalrag.answer.llm.base import Message
    from legalrag.config import Settings
    from legalrag.index.tune import load_questions
    from legalrag.retrieval.retriever import Retriever

    settings = Settings.load()
    retriever = Retriever.open(settings, verify=False)
    chosen = sample_articles(retriever, load_questions(args.queries), args.n)
    done = set()
    if args.out.exists():
        for line in args.out.read_text(encoding="utf-8").splitlines():
            done.add(tuple(json.loads(line)["key"]))
    model = load_chat_model(settings)
    t0 = time.perf_counter()
    kept = tried = 0
    with args.out.open("a", encoding="utf-8") as f:
        for a in chosen:
            key = (a.law, a.number, a.suffix)
            if key in done:
                continue
            if time.perf_counter() - t0 > args.minutes * 60:
                break
            citation = f"《{a.law}》{a.label}"
            prompt = ASK.format(citation=citation, text=a.text[:300])
            reply = model.stream([Message("system", SYSTEM), Message("user", prompt)],
                                 max_tokens=60).text()
            tried += 1
            q = keep(reply)
            if q is None:
                if os.environ.get("GEN_SHOW_REJECTED"):
                    print(f"rejected: {reply!r}", file=sys.stderr)
                continue
            kept += 1
            f.write(json.dumps({"key": list(key), "question": q, "article": citation},
                               ensure_ascii=False) + "\n")
            f.flush()
            if kept % 50 == 0:
                print(f"{kept} kept of {tried}, {time.perf_counter() - t0:.0f} s",
                      file=sys.stderr, flush=True)
    print(f"{kept} kept of {tried} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
