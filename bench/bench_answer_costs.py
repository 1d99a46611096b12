"""What the answer design's mechanics cost with the default model: prefill speed by the
batch size the prompt is read in (a stop is checked between batches: llama.PREFILL_CHUNK),
and decode speed with and without the citation grammar (answer/grammar.py).

    .venv/bin/python bench/bench_answer_costs.py [--rounds 3] [--threads 0]

Real parts: the default GGUF through llama-cpp-python, a real passage prompt built by the
assistant for a real question over the live index. Each prefill round starts from an empty
KV cache; decode rounds write 96 greedy tokens. Prints Markdown with the CPU's flags and
the load average, and writes bench/results/answer_costs.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from legalrag.answer.assistant import Assistant  # noqa: E402
from legalrag.answer.grammar import citation_grammar  # noqa: E402
from legalrag.answer.llm import LlamaCppModel  # noqa: E402
from legalrag.answer.modelfile import chat_model_path  # noqa: E402
from legalrag.answer.provision import provision  # noqa: E402
from legalrag.config import Settings  # noqa: E402

QUESTION = "公司拖欠工资三个月，我可以辞职并要求经济补偿吗？"
CHUNKS = (32, 64, 128, 512)
DECODE_TOKENS = 96


def cpu_flags() -> str:
    """The lscpu model name and the SIMD flags that matter for llama.cpp."""
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((ln.split(":", 1)[1].strip() for ln in out.splitlines()
                  if ln.startswith("Model name")), "?")
    flags = next((ln.split(":", 1)[1].split() for ln in out.splitlines()
                  if ln.startswith("Flags")), [])
    keep = [f for f in flags if f.startswith(("avx", "fma", "f16c", "amx"))]
    return f"{model}; {os.cpu_count()} CPUs; {' '.join(keep)}"


def prompt_tokens(settings: Settings, model: LlamaCppModel) -> tuple[list[int], list, list]:
    """The exact tokens of the assistant's passage prompt for QUESTION, and its sources."""
    assistant = Assistant(settings, model=model)
    retriever = assistant.retriever
    hits = tuple(retriever.search(QUESTION, k=settings.answer_top_k))
    ranked = assistant.passages.rank(QUESTION, [h.article for h in hits])
    quoted = provision(ranked, [hits[0].article])
    ranked.remove(quoted)
    ranked.insert(0, quoted)
    sources, messages = assistant.build_prompt(QUESTION, QUESTION, hits, retriever, ranked,
                                               model)
    return model.prompt_tokens(messages), sources, messages


def prefill_rate(model: LlamaCppModel, tokens: list[int], chunk: int) -> float:
    """Prompt tokens per second, reading tokens from an empty cache chunk at a time."""
    llama = model._llama
    model.reset_cache()
    llama.n_tokens = 0
    t0 = time.perf_counter()
    for i in range(0, len(tokens), chunk):
        llama.eval(tokens[i:i + chunk])
    return len(tokens) / (time.perf_counter() - t0)


def decode_rate(model: LlamaCppModel, messages, grammar: str | None) -> tuple[float, str]:
    """Answer tokens per second after the prompt (llama.cpp's decode counter)."""
    gen = model.stream(messages, max_tokens=DECODE_TOKENS, temperature=0.0, grammar=grammar)
    text = gen.text()
    return gen.usage.decode_tps, text


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="llama.cpp threads (0: all cores)")
    p.add_argument("--out", default=str(ROOT / "bench/results/answer_costs.json"))
    args = p.parse_args()
    settings = Settings.load()
    model = LlamaCppModel(chat_model_path(settings), n_ctx=settings.llm_context,
                          threads=args.threads or os.cpu_count() or 1)
    load0 = os.getloadavg()
    tokens, sources, messages = prompt_tokens(settings, model)
    prefill = {c: [prefill_rate(model, tokens, c) for _ in range(args.rounds)] for c in CHUNKS}
    grammar = citation_grammar([s.article for s in sources])
    decode: dict[str, list[float]] = {"free": [], "grammar": []}
    texts = {}
    for _ in range(args.rounds):
        for name, g in (("free", None), ("grammar", grammar)):
            model.reset_cache()
            rate, texts[name] = decode_rate(model, messages, g)
            decode[name].append(rate)
    result = {
        "cpu": cpu_flags(), "load_before": load0, "load_after": os.getloadavg(),
        "threads": model.threads, "prompt_tokens": len(tokens),
        "prefill_tps": {str(c): statistics.median(v) for c, v in prefill.items()},
        "decode_tps": {k: statistics.median(v) for k, v in decode.items()},
        "texts": texts,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n",
                              encoding="utf-8")
    print(f"CPU: {result['cpu']}; threads {model.threads}; load average "
          f"{load0[0]:.1f} before, {result['load_after'][0]:.1f} after\n")
    print(f"Prompt of {len(tokens)} tokens (the passage prompt for {QUESTION}).\n")
    print("| prefill batch (tokens) | prompt tokens/s (median of "
          f"{args.rounds}) |\n|---|---|")
    for c in CHUNKS:
        print(f"| {c} | {result['prefill_tps'][str(c)]:.1f} |")
    print(f"\n| decoding {DECODE_TOKENS} tokens | tokens/s |\n|---|---|")
    for k, v in result["decode_tps"].items():
        print(f"| {'with the citation grammar' if k == 'grammar' else 'free'} | {v:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
