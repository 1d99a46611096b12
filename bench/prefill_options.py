"""How llama.cpp's options change the wait for the first answer token, on real prompts.

    .venv/bin/python bench/prefill_options.py [-n 10] [--chunks 64,256,512] [--out FILE]

The prompts are the product's own: for the first n questions of the STARD tune part, the
assistant retrieves, ranks the paragraphs and builds the messages and the citation grammar
exactly as it does for a person (Assistant.build_prompt, grammar.citation_grammar). Each
option set then answers every prompt with the default GGUF, one answer token, after the
system prompt is in the KV cache (as in the running app, which prefills it at start-up):

- the prefill chunk (llm.llama.PREFILL_CHUNK: tokens evaluated between two checks for a
  stop; smaller chunks react faster to 停止 and may evaluate slower),
- flash attention on or off,
- with and without the citation grammar (the first token is sampled under it; measured
  without it once, at the product's chunk and without flash attention).

Reports, per option set, the median and p90 of the prompt's new tokens, llama.cpp's own
prefill time and rate (llama_perf_context), and the time to the first token. Nothing else
should run on the machine meanwhile; the load average is recorded before and after.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from legalrag.answer import assistant as assistant_module  # noqa: E402
from legalrag.answer.assistant import Assistant  # noqa: E402
from legalrag.answer.grammar import citation_grammar  # noqa: E402
from legalrag.answer.llm import llama as llama_module  # noqa: E402
from legalrag.answer.llm.llama import LlamaCppModel  # noqa: E402
from legalrag.answer.modelfile import chat_model_path  # noqa: E402
from legalrag.answer.provision import provisions  # noqa: E402
from legalrag.config import Settings  # noqa: E402
from legalrag.index.tune import split_of  # noqa: E402
from legalrag.retrieval.evaluate import load_queries  # noqa: E402

DEFAULT_CHUNK = llama_module.PREFILL_CHUNK


def cpu_flags() -> str:
    out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    flags = next((x.split(":", 1)[1].split() for x in out.splitlines()
                  if x.startswith("Flags:")), [])
    keep = [f for f in flags if f.startswith(("avx", "fma", "amx")) or "vnni" in f]
    return " ".join(keep)


def real_prompts(settings: Settings, n: int, model: LlamaCppModel) -> list[tuple]:
    """(messages, grammar) for the first n tune questions that the assistant answers."""
    assistant = Assistant(settings, model=model)
    retriever = assistant.retriever
    out = []
    for q in load_queries(ROOT / "data/eval/stard_train.jsonl"):
        if split_of(q.id) != "tune":
            continue
        hits = tuple(retriever.search(q.query, k=settings.answer_top_k,
                                      mode=settings.retrieval_mode))
        if not hits:
            continue
        ranked = assistant.passages.rank(q.query, [h.article for h in hits])
        quoted = provisions(ranked, [h.article for h in hits[:assistant_module.PROVISION_FROM]])
        ranked = [*quoted, *(p for p in ranked if p not in quoted)]
        sources, messages = assistant.build_prompt(q.query, q.query, hits, retriever, ranked,
                                                   model)
        grammar = citation_grammar([s.article for s in sources], settings.answer_opening)
        out.append((messages, grammar))
        if len(out) == n:
            break
    return out


def measure(model: LlamaCppModel, prompts: list[tuple], chunk: int, grammar: bool) -> dict:
    llama_module.PREFILL_CHUNK = chunk
    rows = []
    for messages, gbnf in prompts:
        gen = model.stream(messages, max_tokens=1, temperature=0.0,
                           **({"grammar": gbnf} if grammar else {}))
        "".join(gen)
        u = gen.usage
        rows.append((u.prompt_tokens - u.cached_tokens, u.prefill_ms, u.first_token_ms))

    def stat(i: int, q: float) -> float:
        xs = sorted(r[i] for r in rows)
        return xs[min(int(q * len(xs)), len(xs) - 1)] if q < 0.5 else statistics.median(xs)

    rate = sum(r[0] for r in rows) / (sum(r[1] for r in rows) / 1000)
    return {"new_tokens_median": stat(0, 0.5), "prefill_ms_median": round(stat(1, 0.5)),
            "prefill_tok_s": round(rate, 1), "first_token_ms_median": round(stat(2, 0.5)),
            "first_token_ms_p90": round(sorted(r[2] for r in rows)[int(0.9 * len(rows))])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=10, help="tune questions (default 10)")
    ap.add_argument("--chunks", default="64,256,512")
    ap.add_argument("--model", type=Path, help="a GGUF (default: the configured chat model)")
    ap.add_argument("--no-flash", action="store_true", help="skip the flash-attention runs")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/prefill_options.json")
    args = ap.parse_args()
    # the prompts as the passage budget alone makes them (no time limit on reading), so
    # that a run's prompts do not depend on the speed of the machine that builds them
    settings = dataclasses.replace(Settings.load(), answer_read_seconds=0.0)
    path = args.model or chat_model_path(settings)
    load = [os.getloadavg()[0]]
    results = []
    prompts = None
    chunks = [int(c) for c in args.chunks.split(",")]
    for flash in (False,) if args.no_flash else (False, True):
        model = LlamaCppModel(path, n_ctx=settings.llm_context, threads=settings.llm_threads,
                              flash_attn=flash)
        if prompts is None:
            prompts = real_prompts(settings, args.n, model)
        "".join(model.stream(prompts[0][0][:1], max_tokens=1))  # the system prompt, cached
        # every chunk with the grammar; without it once, at the product's chunk
        runs = [(c, True) for c in chunks] + [(llama_module.PREFILL_CHUNK, False)]
        for chunk, grammar in runs if not flash else [(c, True) for c in chunks]:
            t = time.perf_counter()
            row = {"flash_attn": flash, "chunk": chunk, "grammar": grammar,
                   **measure(model, prompts, chunk, grammar)}
            row["wall_s"] = round(time.perf_counter() - t, 1)
            print(json.dumps(row), flush=True)
            results.append(row)
        llama_module.PREFILL_CHUNK = DEFAULT_CHUNK
        del model
    load.append(os.getloadavg()[0])
    report = {"date": time.strftime("%Y-%m-%d %H:%M"), "cpu": platform.processor() or "",
              "cpu_flags": cpu_flags(), "cores": os.cpu_count(), "questions": len(prompts),
              "load_before_after": load, "model": path.name, "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, ensure_ascii=False, indent=1) + "\n", "utf-8")
    print("| flash attention | prefill chunk | grammar | new tokens (median) | prefill "
          "(median) | prefill rate | first token median / p90 |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {'on' if r['flash_attn'] else 'off'} | {r['chunk']} | "
              f"{'yes' if r['grammar'] else 'no'} | {r['new_tokens_median']:.0f} | "
              f"{r['prefill_ms_median'] / 1000:.2f} s | {r['prefill_tok_s']:.0f} tok/s | "
              f"{r['first_token_ms_median'] / 1000:.2f} / {r['first_token_ms_p90'] / 1000:.2f} s |")
    print(f"CPU flags: {report['cpu_flags']}; load {load[0]:.2f} → {load[1]:.2f}")


if __name__ == "__main__":
    main()
