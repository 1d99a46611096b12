"""How often does the support check give ✓ to a copy of an article with one detail changed?

    .venv/bin/python bench/perturbed_copies.py [-n 400] [--seed 0] [--list] [--out FILE]

A ✓ must mean that the sentence says what its article says. A sentence that copies an
article word for word but changes one detail (二个月 for 一个月, 可以 for 应当, 满一年 for
不满一年, the parties swapped) states a rule the article does not, and every overlap score
rates it almost as high as the faithful copy. This script measures that risk on the corpus
itself, with no model but the embedding model:

1. it draws n in-force articles of laws and judicial interpretations (seeded) and takes
   the first sentence of each (to the first 。, 12 to 90 characters) as a faithful copy,
   written as the model writes it: 根据《法》第N条，<sentence>;
2. it changes one detail of the copy, in each way below that the sentence allows:

   - number: the first number before a unit (个月, 年, 日, 倍, 元...) plus one;
   - modal: 应当 → 可以, 可以 → 应当, 不得 → 可以, 有权 → 无权;
   - negation_out: a 不 or 未 left out (not the 不 of 不得);
   - negation_in: 不 put before the first of 承担, 支付, 属于, 适用, 予以;
   - bound: 以上 ↔ 以下, 较大 ↔ 较小, 之前 ↔ 之后, 以前 ↔ 以后;
   - parties: the two sides of a pair (用人单位/劳动者, 出租人/承租人, ...) exchanged;
   - scope: 或者 → 并且;
   - condition_out: the sentence's first clause left out when it states a condition
     (…的, …后, 除…外, 在…, 因…), so the rule after it reads as if it always held;
   - condition_mid: the first such clause after the first left out of the middle;
   - splice: the first half of the article's first sentence and the second half of its
     second, joined inside a clause;

3. it asks the product's check (`SupportScorer.default(...).supports`, the score and the
   rules) about each, and counts ✓ per kind. The faithful copies' ✓ rate is the recall
   side; every ✓ on a changed copy is a wrong ✓.

With --check-text the same copies go to `legalrag check`'s checker instead
(`check.check_text`, the corpus alone, no scorer and no model): there a ✓ is the label
现行有效 (in_force) on the copy's citation, which a faithful copy should keep and a copy
with a word changed should lose to misquoted. That checker looks for changed words
and for conditions left out (support.left_out), so splices keep their ✓ there.

Some changes leave the meaning as it was (或者 → 并且 in a list of one, the parties
exchanged in a sentence about both), so a few ✓ on them may be right; --list prints every
✓ given to a changed copy so that each can be read.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

_UNIT = r"(?=个月|个工作日|年|日|天|倍|元|万元|人|次|周|小时|以上|以下)"
_NUMBER_RE = re.compile(r"[一二三四五六七八九十百千]+" + _UNIT)
MODALS = (("应当", "可以"), ("可以", "应当"), ("不得", "可以"), ("有权", "无权"))
BOUNDS = (("以上", "以下"), ("以下", "以上"), ("较大", "较小"), ("之前", "之后"),
          ("之后", "之前"), ("以前", "以后"), ("以后", "以前"))
PARTIES = (("用人单位", "劳动者"), ("出租人", "承租人"), ("出卖人", "买受人"),
           ("债权人", "债务人"), ("原告", "被告"), ("发包人", "承包人"),
           ("委托人", "受托人"), ("贷款人", "借款人"), ("保险人", "投保人"),
           ("行政机关", "当事人"), ("抵押权人", "抵押人"), ("质权人", "出质人"))
_NOT_RE = re.compile(r"[不未](?!得)")
_VERB_RE = re.compile(r"承担|支付|属于|适用|予以")


def perturbations(sentence: str) -> dict[str, str]:
    """Each kind of change the sentence allows, applied once (the first place it fits)."""
    from legalrag.numerals import parse_numeral, to_chinese

    out: dict[str, str] = {}
    m = _NUMBER_RE.search(sentence)
    if m:
        try:
            value = parse_numeral(m.group())
        except ValueError:
            value = None
        if value is not None:
            out["number"] = sentence[:m.start()] + to_chinese(value + 1) + sentence[m.end():]
    for old, new in MODALS:
        if old in sentence:
            out["modal"] = sentence.replace(old, new, 1)
            break
    m = _NOT_RE.search(sentence)
    if m:
        out["negation_out"] = sentence[:m.start()] + sentence[m.end():]
    m = _VERB_RE.search(sentence)
    if m and sentence[m.start() - 1:m.start()] not in ("不", "未"):
        out["negation_in"] = sentence[:m.start()] + "不" + sentence[m.start():]
    for old, new in BOUNDS:
        if old in sentence:
            out["bound"] = sentence.replace(old, new, 1)
            break
    for a, b in PARTIES:
        if (a in sentence) != (b in sentence) or (a in sentence and b in sentence):
            if a in b or b in a:
                continue
            swapped = sentence.replace(a, "\0").replace(b, a).replace("\0", b)
            if swapped != sentence:
                out["parties"] = swapped
                break
    if "或者" in sentence:
        out["scope"] = sentence.replace("或者", "并且", 1)
    clauses = sentence.split("，")
    if len(clauses) >= 2 and _is_condition(clauses[0]) and len("，".join(clauses[1:])) >= 8:
        out["condition_out"] = "，".join(clauses[1:])
    mid = next((k for k in range(1, len(clauses) - 1) if _is_condition(clauses[k])), None)
    if mid is not None:
        out["condition_mid"] = "，".join(clauses[:mid] + clauses[mid + 1:])
    return out


def _is_condition(clause: str) -> bool:
    """A clause that states when the rule holds: …的, …前/后/时, 除…外, 在…, 因…."""
    return len(clause) >= 4 and (clause.endswith(("的", "前", "后", "时", "外"))
                                 or clause.startswith(("在", "除", "因")))


def splice(text: str) -> str | None:
    """The first half of the article's first sentence joined to the second half of its
    second one, inside a clause on both sides (the 管理人 given the 施工人's defence), or
    None when the article has no two sentences of 12 characters or more."""
    parts = [p for p in re.split(r"[。；\n]", text) if len(p) >= 12]
    if len(parts) < 2:
        return None
    a, b = parts[0], parts[1]
    cut_a = next((k for k in range(len(a) // 2, len(a) - 3) if a[k] not in "，、：" and
                  a[k - 1] not in "，、："), None)
    cut_b = next((k for k in range(len(b) // 2, len(b) - 3) if b[k] not in "，、：" and
                  b[k - 1] not in "，、："), None)
    if cut_a is None or cut_b is None or a[:cut_a] + b[cut_b:] in text:
        return None
    return a[:cut_a] + b[cut_b:]


def main() -> int:
    from calibrate_support import default_embed

    from legalrag.answer.support import SupportScorer
    from legalrag.index.corpus import parse_corpus

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=400, help="articles drawn")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--list", action="store_true", help="print every ✓ on a changed copy")
    ap.add_argument("--out", type=Path, help="write the counts here (JSON)")
    ap.add_argument("--check-text", action="store_true",
                    help="ask legalrag check's checker (✓ = in_force) instead of the scorer")
    args = ap.parse_args()
    corpus = parse_corpus(ROOT / "corpus").articles
    articles = [a for a in corpus if a.in_force and a.level in ("法律", "司法解释")]
    random.Random(args.seed).shuffle(articles)
    if args.check_text:
        from legalrag.answer.check import CorpusFacts, check_text
        from legalrag.vocab import IN_FORCE

        facts = CorpusFacts.from_articles(corpus)

        def ticked(text: str, a) -> bool:
            return [c.label for c in check_text(text, facts) if c.kind == "article"
                    and (c.law, c.number) == (a.law, a.number)][:1] == [IN_FORCE]
    else:
        scorer = SupportScorer.default(default_embed())

        def ticked(text: str, a) -> bool:
            return scorer.supports(text, a)
    given: Counter[str] = Counter()
    asked: Counter[str] = Counter()
    wrong: list[dict] = []
    drawn = 0
    for a in articles:
        if drawn == args.n:
            break
        first = a.text.split("。")[0].split("\n")[0]
        if not 12 <= len(first) <= 90:
            continue
        drawn += 1
        frame = f"根据《{a.law}》{a.label}，"
        changed = perturbations(first)
        if (joined := splice(a.text)) is not None:
            changed["splice"] = joined
        for kind, text in {"faithful": first, **changed}.items():
            asked[kind] += 1
            if ticked(frame + text + "。", a):
                given[kind] += 1
                if kind != "faithful":
                    wrong.append({"kind": kind, "article": a.citation, "copy": text,
                                  "article_text": first})
    rows = {k: {"copies": asked[k], "ticks": given[k],
                "share": round(given[k] / asked[k], 4) if asked[k] else 0.0}
            for k in asked}
    changed = sum(asked[k] for k in asked if k != "faithful")
    changed_ticks = sum(given[k] for k in given if k != "faithful")
    for k, r in rows.items():
        print(f"{k:>13}: {r['ticks']:>4} ✓ of {r['copies']:>4} ({r['share']:.1%})")
    print(f"{'changed, all':>13}: {changed_ticks:>4} ✓ of {changed:>4} "
          f"({changed_ticks / max(1, changed):.1%})")
    if args.list:
        for w in wrong:
            print(f"{w['kind']}\t{w['article']}\t{w['copy']}\t(article: {w['article_text']})")
    if args.out:
        args.out.write_text(json.dumps({"n": drawn, "seed": args.seed,
                                        "checker": "check_text" if args.check_text
                                        else "support", "kinds": rows,
                                        "changed_ticks": wrong}, ensure_ascii=False,
                                       indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
