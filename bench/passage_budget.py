"""What the passage budget (answer_passage_tokens) costs in prompt tokens and in gold
articles the model reads, on the STARD tune part. No answer is generated.

    .venv/bin/python bench/passage_budget.py [-n 150] [--budgets 450,350,300,250,200]

For every question the assistant retrieves, ranks the paragraphs and builds its prompt as
it does for a person (Assistant.build_prompt), once per budget. Reported per budget: the
prompt tokens the model must read before its first word (those after the system prompt,
which the app keeps in the KV cache), median and p90, and the share of questions with a
gold article among the sources in the prompt. The time limit on reading
(answer_read_seconds) is off here: it would cut by the speed of the machine. Divide the
new tokens by the prefill rate of bench/prefill_options.py to get the wait for the first
token on a machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from legalrag.answer import assistant as assistant_module  # noqa: E402
from legalrag.answer.assistant import Assistant  # noqa: E402
from legalrag.answer.llm.llama import LlamaCppModel  # noqa: E402
from legalrag.answer.modelfile import chat_model_path  # noqa: E402
from legalrag.answer.provision import provisions  # noqa: E402
from legalrag.config import Settings  # noqa: E402
from legalrag.index.tune import split_of  # noqa: E402
from legalrag.retrieval.evaluate import load_queries, resolve_gold  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=150, help="tune questions (default 150)")
    ap.add_argument("--budgets", default="450,350,300,250,200")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/passage_budget.json")
    args = ap.parse_args()
    settings = Settings.load()
    model = LlamaCppModel(chat_model_path(settings), n_ctx=settings.llm_context, threads=1)
    budgets = [int(b) for b in args.budgets.split(",")]
    base = Assistant(settings, model=model)
    retriever = base.retriever
    system_only = None
    rows: dict[int, list[tuple[int, bool]]] = {b: [] for b in budgets}
    queries = [q for q in load_queries(ROOT / "data/eval/stard_train.jsonl")
               if split_of(q.id) == "tune"][: args.n]
    for q in queries:
        hits = tuple(retriever.search(q.query, k=settings.answer_top_k,
                                      mode=settings.retrieval_mode))
        if not hits:
            continue
        gold = {g.key for g in (resolve_gold(c, retriever) for c in q.relevant) if g.key}
        ranked = base.passages.rank(q.query, [h.article for h in hits])
        quoted = provisions(ranked, [h.article for h in hits[:assistant_module.PROVISION_FROM]])
        ranked = [*quoted, *(p for p in ranked if p not in quoted)]
        for b in budgets:
            a = Assistant(dataclasses.replace(settings, answer_passage_tokens=b,
                                              answer_read_seconds=0.0), retriever,
                          model=model)
            a._passages = base.passages
            sources, messages = a.build_prompt(q.query, q.query, hits, retriever, ranked, model)
            tokens = model.prompt_tokens(messages)
            if system_only is None:
                system_only = model.prompt_tokens(messages[:1])
            cached = next((i for i, (x, y) in enumerate(zip(tokens, system_only, strict=False))
                           if x != y), min(len(tokens), len(system_only)))
            keys = {(s.article.law, s.article.number, s.article.suffix) for s in sources}
            rows[b].append((len(tokens) - cached, bool(keys & gold)))
    report = []
    print(f"{len(queries)} tune questions, {len(rows[budgets[0]])} with sources\n")
    print("| passage budget | new prompt tokens median / p90 | gold among the prompt's sources |")
    print("|---|---|---|")
    for b in budgets:
        new = sorted(r[0] for r in rows[b])
        p90 = new[int(0.9 * len(new))]
        gold = sum(r[1] for r in rows[b]) / len(rows[b])
        report.append({"budget": b, "new_tokens_median": statistics.median(new),
                       "new_tokens_p90": p90, "gold_in_prompt": round(gold, 4)})
        print(f"| {b} | {statistics.median(new):.0f} / {p90} | {gold:.1%} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"questions": len(queries), "results": report}, indent=1)
                        + "\n", "utf-8")


if __name__ == "__main__":
    main()
