"""Generation benchmark: how long a person waits for an answer, and what legalrag costs
on top of raw llama.cpp.

    .venv/bin/python bench/bench_generate.py [--questions 8] [--rounds 3] [--skip-levers]

With the default model (Qwen2.5-Coder-1.5B Q4 GGUF) and the live index, it measures:

1. Typical STARD training questions through ``Assistant.stream``, after ``warm_up``: time
   to the sources, to the first answer token and to the complete answer, prompt and answer
   tokens, and whether the answer cites a gold article that it was given (verified).
2. legalrag vs raw llama-cpp-python on the same GGUF and the same prompt, in the same run:
   rounds alternate raw / legalrag, each from an empty KV cache, 64 greedy answer tokens.
   Prefill and decode speed come from llama.cpp's own counters (llama_perf_context) and
   the time to first token from the wall clock.
3. Levers: the cached system prompt (time to first token with and without it) and the
   source token budget (answer_source_tokens): how often a gold article is in the prompt
   (over --coverage-questions questions, no generation needed) and the prefill it costs.

Prints Markdown and writes bench/results/generate.json. The CPU may be shared with other
jobs; the report records the load average before and after so noisy runs are visible.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from legalrag.answer.assistant import Assistant, Final, Sources, Token  # noqa: E402
from legalrag.answer.llm import LlamaCppModel, load_chat_model  # noqa: E402
from legalrag.answer.prompt import build_messages, fit_sources, source_budget  # noqa: E402
from legalrag.citations import LawNames, find_citations  # noqa: E402
from legalrag.config import Settings  # noqa: E402
from legalrag.retrieval.retriever import Retriever  # noqa: E402

RAW_TOKENS = 64


def load_questions(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text("utf-8").splitlines() if x.strip()]


def gold_keys(item: dict, names: LawNames) -> set[tuple[str, int, int]]:
    out = set()
    for cite in item["relevant"]:
        for ref in find_citations(cite):
            law = names.resolve(ref.law)
            if law:
                out.add((law, ref.number, ref.suffix))
    return out


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else 0.0


def typical(assistant: Assistant, items: list[dict], names: LawNames) -> list[dict]:
    rows = []
    for item in items:
        t0 = time.perf_counter()
        sources_ms = 0.0
        answer = None
        for ev in assistant.stream(item["query"]):
            if isinstance(ev, Sources):
                sources_ms = (time.perf_counter() - t0) * 1000
            elif isinstance(ev, Token):
                pass
            elif isinstance(ev, Final):
                answer = ev.answer
        assert answer is not None
        gold = gold_keys(item, names)
        given = {(s.article.law, s.article.number, s.article.suffix) for s in answer.sources}
        cited = {(c.law, c.number, c.suffix) for c in answer.citations
                 if c.kind == "article" and c.label == "verified"}
        t = answer.timings
        rows.append({
            "id": item["id"], "query": item["query"], "abstained": answer.abstained,
            "sources_ms": sources_ms, "first_token_ms": t.first_token_ms,
            "total_ms": t.total_ms, "prompt_tokens": t.prompt_tokens,
            "cached_tokens": t.cached_tokens, "completion_tokens": t.completion_tokens,
            "threads": t.threads,
            "gold_in_prompt": bool(gold & given), "gold_cited": bool(gold & cited),
            "labels": answer.labels(), "answer": answer.raw_text,
        })
        print(f"  {item['id']}: sources {sources_ms:.0f} ms, first token "
              f"{t.first_token_ms / 1000:.1f} s, total {t.total_ms / 1000:.1f} s, "
              f"{t.prompt_tokens} prompt ({t.cached_tokens} cached) / {t.completion_tokens} "
              f"answer tokens, {t.threads} threads, labels {answer.labels()}", file=sys.stderr)
    return rows


def perf(llama) -> tuple[float, float, int, int]:
    import llama_cpp

    p = llama_cpp.llama_perf_context(llama._ctx.ctx)
    return p.t_p_eval_ms, p.t_eval_ms, p.n_p_eval, p.n_eval


def raw_run(llama, messages: list[dict]) -> dict:
    """One answer through llama-cpp-python alone: create_chat_completion, as its own docs
    show, from an empty KV cache."""
    llama.reset()
    llama._ctx.kv_cache_clear()
    before = perf(llama)
    t0 = time.perf_counter()
    first = 0.0
    pieces = []
    for chunk in llama.create_chat_completion(messages=messages, stream=True, temperature=0.0,
                                              max_tokens=RAW_TOKENS, seed=42):
        piece = chunk["choices"][0]["delta"].get("content")
        if piece:
            first = first or time.perf_counter()
            pieces.append(piece)
    end = time.perf_counter()
    t_p, t_e, n_p, n_e = (b - a for a, b in zip(before, perf(llama), strict=True))
    return {"ttft_ms": (first - t0) * 1000, "total_ms": (end - t0) * 1000,
            "prefill_tokens": n_p, "prefill_tps": n_p / t_p * 1000,
            "decode_tokens": n_e, "decode_tps": n_e / t_e * 1000, "text": "".join(pieces)}


def legalrag_run(model: LlamaCppModel, messages) -> dict:
    model.reset_cache()
    t0 = time.perf_counter()
    gen = model.stream(messages, max_tokens=RAW_TOKENS, temperature=0.0, seed=42)
    first = 0.0
    pieces = []
    for piece in gen:
        first = first or time.perf_counter()
        pieces.append(piece)
    end = time.perf_counter()
    u = gen.usage
    return {"ttft_ms": (first - t0) * 1000, "total_ms": (end - t0) * 1000,
            "prefill_tokens": u.prefill_tokens, "prefill_tps": u.prefill_tps,
            "decode_tokens": u.decode_tokens, "decode_tps": u.decode_tps,
            "text": "".join(pieces)}


def raw_vs_legalrag(path: Path, n_ctx: int, threads: int, messages, rounds: int) -> dict:
    """Both sides with the same fixed thread count, so only legalrag's own work differs."""
    import llama_cpp

    model = LlamaCppModel(path, n_ctx=n_ctx, threads=threads)
    raw = llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_threads=threads,
                          n_threads_batch=threads, seed=42, verbose=False)
    as_dicts = [m.as_dict() for m in messages]
    runs: dict[str, list[dict]] = {"raw": [], "legalrag": []}
    for i in range(rounds):
        order = ("raw", "legalrag") if i % 2 == 0 else ("legalrag", "raw")
        for name in order:
            r = raw_run(raw, as_dicts) if name == "raw" else legalrag_run(model, messages)
            runs[name].append(r)
            print(f"  round {i + 1} {name}: prefill {r['prefill_tokens']} tok at "
                  f"{r['prefill_tps']:.1f} tok/s, decode {r['decode_tokens']} at "
                  f"{r['decode_tps']:.1f} tok/s, first token {r['ttft_ms'] / 1000:.2f} s",
                  file=sys.stderr)
    del raw, model
    out = {name: {k: med([r[k] for r in rs]) for k in
                  ("ttft_ms", "total_ms", "prefill_tokens", "prefill_tps", "decode_tokens",
                   "decode_tps")} for name, rs in runs.items()}
    out["same_text"] = all(a["text"] == b["text"]
                           for a, b in zip(runs["raw"], runs["legalrag"], strict=True))
    # Ratios per round (raw and legalrag ran back to back, under the same load), then the
    # median: steadier than a ratio of medians when other jobs come and go.
    pairs = list(zip(runs["raw"], runs["legalrag"], strict=True))
    out["ratio_prefill"] = med([b["prefill_tps"] / a["prefill_tps"] for a, b in pairs])
    out["ratio_decode"] = med([b["decode_tps"] / a["decode_tps"] for a, b in pairs])
    out["ratio_ttft"] = med([a["ttft_ms"] / b["ttft_ms"] for a, b in pairs])
    out["runs"] = runs
    out["threads"] = threads
    return out


def threads_lever(path: Path, n_ctx: int, messages, rounds: int) -> dict:
    """Prefill and decode with 1 and with all cores, alternating, under whatever else the
    machine is doing now: the case for adapting threads to contention (CpuWatch)."""
    import os as _os

    cores = _os.cpu_count() or 1
    models = {n: LlamaCppModel(path, n_ctx=n_ctx, threads=n) for n in sorted({1, cores})}
    runs: dict[int, list[dict]] = {n: [] for n in models}
    for i in range(rounds):
        for n in (sorted(models) if i % 2 == 0 else sorted(models, reverse=True)):
            r = legalrag_run(models[n], messages)
            r["load"] = _os.getloadavg()[0]
            runs[n].append(r)
            print(f"  {n} thread(s): prefill {r['prefill_tps']:.1f} tok/s, decode "
                  f"{r['decode_tps']:.1f} tok/s, load {r['load']:.1f}", file=sys.stderr)
    return {str(n): {"prefill_tps": med([r["prefill_tps"] for r in rs]),
                     "decode_tps": med([r["decode_tps"] for r in rs]),
                     "load": med([r["load"] for r in rs])} for n, rs in runs.items()}


def system_cache_lever(model: LlamaCppModel, messages_list: list) -> dict:
    """Time to first token for the same prompts from an empty cache and with the system
    prompt (and source intro) already cached, as after Assistant.warm_up."""
    cold, warm, cached = [], [], 0
    for messages in messages_list:
        model.reset_cache()
        g = model.stream(messages, max_tokens=1)
        g.text()
        cold.append(g.usage.first_token_ms)
        # Leave only the shared prefix in the cache: evaluate system + intro, then ours.
        model.reset_cache()
        intro = messages[1].content.split("\n", 1)[0]
        model.stream([messages[0], type(messages[1])("user", intro)], max_tokens=1).text()
        g = model.stream(messages, max_tokens=1)
        g.text()
        warm.append(g.usage.first_token_ms)
        cached = g.usage.cached_tokens
        print(f"  first token cold {cold[-1] / 1000:.2f} s, system prompt cached "
              f"{warm[-1] / 1000:.2f} s ({g.usage.cached_tokens} cached)", file=sys.stderr)
    return {"cold_ms": med(cold), "warm_ms": med(warm), "n": len(cold), "cached_tokens": cached}


def budget_lever(retriever: Retriever, model: LlamaCppModel, settings: Settings,
                 items: list[dict], combos: list[tuple[int, int]]) -> list[dict]:
    """Gold article in the prompt vs sources retrieved (k) and source tokens, over many
    questions, without generation. Ranking does not depend on k, so one search at the
    largest k serves every combination."""
    names = retriever.names
    kmax = max(k for k, _ in combos)
    hits_by_q = [(item, gold_keys(item, names), retriever.search(item["query"], k=kmax))
                 for item in items]
    rows = []
    for k, budget in combos:
        covered = retrieved = 0
        tokens = []
        for item, gold, hits in hits_by_q:
            top = hits[:k]
            retrieved += bool(gold & {(h.article.law, h.article.number, h.article.suffix)
                                      for h in top})
            cap = source_budget(model.n_ctx, settings.llm_max_tokens, item["query"],
                                model.count_tokens, cap=budget)
            sources = fit_sources([h.article for h in top], cap, model.count_tokens)
            covered += bool(gold & {(s.article.law, s.article.number, s.article.suffix)
                                    for s in sources})
            tokens.append(len(model.prompt_tokens(build_messages(item["query"], sources))))
        n = len(hits_by_q)
        rows.append({"k": k, "budget": budget, "gold_retrieved": retrieved / n,
                     "gold_in_prompt": covered / n, "prompt_tokens": med(tokens),
                     "prompt_tokens_p90": sorted(tokens)[int(0.9 * (n - 1))], "n": n})
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stard", default=str(ROOT / "data/eval/stard_train.jsonl"))
    p.add_argument("--questions", type=int, default=8)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--coverage-questions", type=int, default=300)
    p.add_argument("--skip-levers", action="store_true")
    p.add_argument("--threads", type=int, default=0,
                   help="threads for the raw comparison (default: what CpuWatch picks now)")
    p.add_argument("--out", default=str(ROOT / "bench/results/generate.json"))
    args = p.parse_args()

    load_before = os.getloadavg()
    settings = Settings.load()
    retriever = Retriever.open(settings)
    t0 = time.perf_counter()
    model = load_chat_model(settings)
    load_s = time.perf_counter() - t0
    assert isinstance(model, LlamaCppModel), "the benchmark runs the in-process backend"
    assistant = Assistant(settings, retriever=retriever, model=model)
    t0 = time.perf_counter()
    assistant.warm_up()
    warm_s = time.perf_counter() - t0

    items = load_questions(Path(args.stard))
    rng = random.Random(0)
    sample = rng.sample(items, args.questions)
    print(f"{len(sample)} typical questions", file=sys.stderr)
    rows = typical(assistant, sample, retriever.names)
    answered = [r for r in rows if not r["abstained"]]

    first = next(r for r in rows if not r["abstained"])
    hits = retriever.search(first["query"], k=settings.answer_top_k)
    budget = source_budget(model.n_ctx, settings.llm_max_tokens, first["query"],
                           model.count_tokens, cap=settings.answer_source_tokens)
    messages = build_messages(first["query"], fit_sources([h.article for h in hits], budget,
                                                          model.count_tokens))
    threads = args.threads or model.threads
    print(f"raw llama-cpp-python vs legalrag, {threads} threads", file=sys.stderr)
    versus = raw_vs_legalrag(model.path, model.n_ctx, threads, messages, args.rounds)

    levers: dict = {}
    if not args.skip_levers:
        print("lever: cached system prompt", file=sys.stderr)
        msgs = []
        for item in sample[:4]:
            hs = retriever.search(item["query"], k=settings.answer_top_k)
            cap = source_budget(model.n_ctx, settings.llm_max_tokens, item["query"],
                                model.count_tokens, cap=settings.answer_source_tokens)
            msgs.append(build_messages(item["query"], fit_sources([h.article for h in hs], cap,
                                                                  model.count_tokens)))
        levers["system_cache"] = system_cache_lever(model, msgs)
        print("lever: source token budget", file=sys.stderr)
        cov_items = random.Random(1).sample(items, min(args.coverage_questions, len(items)))
        combos = [(5, 300), (5, 600), (5, 900), (5, 1500), (3, 900), (8, 900), (8, 1500)]
        levers["budget"] = budget_lever(retriever, model, settings, cov_items, combos)
        print("lever: threads", file=sys.stderr)
        levers["threads"] = threads_lever(model.path, model.n_ctx, messages, 2)
        cached = levers["system_cache"]["cached_tokens"]
        for r in levers["budget"]:
            # With the system prompt cached, only the rest of the prompt is evaluated.
            r["prefill_s"] = (r["prompt_tokens"] - cached) / versus["legalrag"]["prefill_tps"]
            r["prefill_s_p90"] = ((r["prompt_tokens_p90"] - cached)
                                  / versus["legalrag"]["prefill_tps"])

    load_after = os.getloadavg()
    report = {
        "model": model.name, "n_ctx": model.n_ctx, "threads_auto": settings.llm_threads == 0,
        "settings": {k: getattr(settings, k) for k in (
            "answer_top_k", "answer_source_tokens", "answer_source_chars", "llm_max_tokens",
            "llm_temperature", "llm_context")},
        "load_avg_before": load_before, "load_avg_after": load_after,
        "model_load_s": load_s, "warm_up_s": warm_s, "typical": rows, "versus": versus,
        "levers": levers,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, ensure_ascii=False, indent=1, default=str) + "\n")

    def s(ms: float) -> str:
        return f"{ms / 1000:.1f} s"

    print(f"model {model.name}, n_ctx {model.n_ctx}, threads "
          f"{'auto' if settings.llm_threads == 0 else settings.llm_threads}; "
          f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after; "
          f"model load {load_s:.1f} s, warm-up {warm_s:.1f} s\n")
    print(f"Typical STARD questions: {len(rows)} ({len(rows) - len(answered)} abstained)\n")
    print("| | median | max |\n|---|---|---|")
    for key, label in (("sources_ms", "sources on screen"), ("first_token_ms", "first token"),
                       ("total_ms", "complete answer")):
        xs = [r[key] for r in answered]
        fmt = (lambda v: f"{v:.0f} ms") if key == "sources_ms" else s
        print(f"| {label} | {fmt(med(xs))} | {fmt(max(xs))} |")
    for key in ("prompt_tokens", "cached_tokens", "completion_tokens"):
        xs = [r[key] for r in answered]
        print(f"| {key.replace('_', ' ')} | {med(xs):.0f} | {max(xs):.0f} |")
    print(f"\ngold article in the prompt: {sum(r['gold_in_prompt'] for r in answered)}"
          f"/{len(answered)}; answer cites a gold article (verified): "
          f"{sum(r['gold_cited'] for r in answered)}/{len(answered)}; answers with a "
          f"verified citation: {sum(bool(r['labels'].get('verified')) for r in answered)}"
          f"/{len(answered)}; unverified citations: "
          f"{sum(v for r in answered for k, v in r['labels'].items() if k != 'verified')}")
    v = versus
    print(f"\nraw llama-cpp-python vs legalrag, same GGUF, same prompt "
          f"({v['raw']['prefill_tokens']:.0f} prompt tokens), {v['threads']} threads each, "
          f"{args.rounds} alternating rounds, medians (ratio: median of per-round ratios); "
          f"same answer text: {v['same_text']}\n")
    print("| | raw | legalrag | ratio |\n|---|---|---|---|")
    print(f"| prefill tok/s | {v['raw']['prefill_tps']:.1f} | {v['legalrag']['prefill_tps']:.1f}"
          f" | {v['ratio_prefill']:.3f} |")
    print(f"| decode tok/s | {v['raw']['decode_tps']:.1f} | {v['legalrag']['decode_tps']:.1f} "
          f"| {v['ratio_decode']:.3f} |")
    print(f"| first token | {s(v['raw']['ttft_ms'])} | {s(v['legalrag']['ttft_ms'])} | "
          f"{v['ratio_ttft']:.3f} |")
    if levers:
        c = levers["system_cache"]
        print(f"\ncached system prompt: first token {s(c['cold_ms'])} from an empty cache, "
              f"{s(c['warm_ms'])} with the system prompt cached (median of {c['n']})\n")
        print("\n| threads | prefill tok/s | decode tok/s | load average |\n|---|---|---|---|")
        for n, r in levers["threads"].items():
            print(f"| {n} | {r['prefill_tps']:.1f} | {r['decode_tps']:.1f} | {r['load']:.1f} |")
        print()
        print("| sources (k) | source tokens | gold retrieved | gold in prompt | prompt tokens "
              "median / p90 | prefill after the cached system prompt at the measured rate, "
              "median / p90 |")
        print("|---|---|---|---|---|---|")
        for r in levers["budget"]:
            print(f"| {r['k']} | {r['budget']} | {r['gold_retrieved']:.1%} | "
                  f"{r['gold_in_prompt']:.1%} | {r['prompt_tokens']:.0f} / "
                  f"{r['prompt_tokens_p90']} | {r['prefill_s']:.1f} s / "
                  f"{r['prefill_s_p90']:.1f} s |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
