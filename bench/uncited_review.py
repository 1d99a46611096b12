"""How often the model's sentences that cite nothing are wrong: items for two reviewers,
their labels merged, and the counts.

    python bench/uncited_review.py items ANSWERS_JSON... --out items.jsonl --key key.json
    python bench/uncited_review.py merge --items items.jsonl --key key.json \
        --a a.jsonl --b b.jsonl --out data/eval/uncited_labels.jsonl
    python bench/uncited_review.py report data/eval/uncited_labels.jsonl

`items` reads `legalrag eval-answers` answers.json files saved before 2026-12-07 (night),
when such a sentence was marked 〔未引条文〕 in the answer's text, and writes one item per
marked sentence, shuffled under new ids: the question, the whole answer as the reader saw
it, and the sentence. Each reviewer labels every item consistent, contradicts_quoted,
wrong_otherwise, unfounded or no_claim (the rule is in data/eval/README.md). `report`
counts them: a sentence is wrong when a reviewer said contradicts_quoted or
wrong_otherwise.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections import Counter
from pathlib import Path

MARK = "〔未引条文〕"
WRONG = frozenset({"contradicts_quoted", "wrong_otherwise"})
LABELS = ("consistent", "contradicts_quoted", "wrong_otherwise", "unfounded", "no_claim")
_ENDS = "。！？\n；"


def items(paths: list[Path], seed: int) -> list[dict]:
    """One row per sentence marked 〔未引条文〕 in the saved answers."""
    rows = []
    for path in paths:
        for q in json.loads(path.read_text(encoding="utf-8"))["questions"]:
            a = q["answer"]
            if a["abstained"] or MARK not in a["text"]:
                continue
            body = a["text"].split("\n\n注意：")[0]
            for k, m in enumerate(re.finditer(re.escape(MARK), body)):
                start = max(body.rfind(c, 0, m.start()) for c in _ENDS) + 1
                rows.append({"id": f"{q['id']}#{k}", "set": path.parent.name,
                             "question_id": q["id"], "question": q["query"], "answer": body,
                             "sentence": body[start:m.start()].strip()})
    random.Random(seed).shuffle(rows)
    return rows


def merge(rows: list[dict], key: dict[str, str], a: dict[str, dict], b: dict[str, dict]
          ) -> list[dict]:
    by_id = {r["id"]: r for r in rows}
    out = []
    for blind, rid in sorted(key.items()):
        out.append({**by_id[rid], "item": blind,
                    "label_a": a[blind]["label"], "why_a": a[blind].get("why", ""),
                    "label_b": b[blind]["label"], "why_b": b[blind].get("why", "")})
    return out


def report(rows: list[dict]) -> dict:
    wrong_a = [r["label_a"] in WRONG for r in rows]
    wrong_b = [r["label_b"] in WRONG for r in rows]
    n = len(rows)
    agree = sum(x == y for x, y in zip(wrong_a, wrong_b, strict=True)) / n
    pa, pb = sum(wrong_a) / n, sum(wrong_b) / n
    chance = pa * pb + (1 - pa) * (1 - pb)
    answers: dict[tuple[str, str], list[bool]] = {}
    for r, x, y in zip(rows, wrong_a, wrong_b, strict=True):
        answers.setdefault((r["set"], r["question_id"]), []).append(x and y)
    out = {
        "sentences": n,
        "by_reviewer": {side: dict(Counter(r[f"label_{side}"] for r in rows)) for side in "ab"},
        "wrong_by_both": sum(x and y for x, y in zip(wrong_a, wrong_b, strict=True)),
        "wrong_by_either": sum(x or y for x, y in zip(wrong_a, wrong_b, strict=True)),
        "contradicts_quoted_by_both": sum(r["label_a"] == r["label_b"] == "contradicts_quoted"
                                          for r in rows),
        "consistent_by_both": sum(r["label_a"] == r["label_b"] == "consistent" for r in rows),
        "labels_agree": round(sum(r["label_a"] == r["label_b"] for r in rows) / n, 3),
        "wrong_agree": round(agree, 3),
        "wrong_kappa": round((agree - chance) / (1 - chance), 3),
        "answers": len(answers),
        "answers_with_a_sentence_wrong_by_both": sum(any(v) for v in answers.values()),
        "by_set": {},
    }
    for name in sorted({r["set"] for r in rows}):
        part = [(r, x, y) for r, x, y in zip(rows, wrong_a, wrong_b, strict=True)
                if r["set"] == name]
        out["by_set"][name] = {
            "sentences": len(part), "wrong_by_both": sum(x and y for _, x, y in part),
            "consistent_by_both": sum(r["label_a"] == r["label_b"] == "consistent"
                                      for r, _, _ in part)}
    return out


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("items")
    p.add_argument("answers", nargs="+", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--key", type=Path, required=True)
    p.add_argument("--rows", type=Path, help="the unshuffled rows, for merge (default: "
                   "beside --key)")
    p.add_argument("--seed", type=int, default=40)
    p = sub.add_parser("merge")
    p.add_argument("--rows", type=Path, required=True)
    p.add_argument("--key", type=Path, required=True)
    p.add_argument("--a", type=Path, required=True)
    p.add_argument("--b", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p = sub.add_parser("report")
    p.add_argument("labels", type=Path)
    args = ap.parse_args()
    if args.cmd == "items":
        rows = items(args.answers, args.seed)
        key = {f"u{i:03d}": r["id"] for i, r in enumerate(rows, 1)}
        args.out.write_text("".join(json.dumps(
            {"item": b, "question": r["question"], "answer": r["answer"],
             "sentence": r["sentence"]}, ensure_ascii=False) + "\n"
            for b, r in zip(key, rows, strict=True)), encoding="utf-8")
        args.key.write_text(json.dumps(key, ensure_ascii=False), encoding="utf-8")
        (args.rows or args.key.with_name("rows.json")).write_text(
            json.dumps(rows, ensure_ascii=False), encoding="utf-8")
        print(f"{len(rows)} sentences -> {args.out}")
    elif args.cmd == "merge":
        rows = json.loads(args.rows.read_text(encoding="utf-8"))
        key = json.loads(args.key.read_text(encoding="utf-8"))
        a, b = ({r["item"]: r for r in _jsonl(f)} for f in (args.a, args.b))
        if set(a) != set(key) or set(b) != set(key):
            raise SystemExit("each reviewer must label every item once")
        merged = merge(rows, key, a, b)
        args.out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in merged),
                            encoding="utf-8")
        print(json.dumps(report(merged), ensure_ascii=False))
    else:
        print(json.dumps(report(_jsonl(args.labels)), ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
