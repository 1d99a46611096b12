"""Injection check per GGUF (issue 14): for each chat model the project installs, a source
and a question carrying that model's own control tokens; how many control token ids the
prompt holds beyond those its template put there (must be 0), against the naive prompt
(the whole text tokenized with special tokens on, nothing defused).

    .venv/bin/python bench/injection_check.py [--out bench/results/injection.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from legalrag.answer.llm.llama import LlamaCppModel
    from legalrag.answer.llm.special import control_token_ids
    from legalrag.answer.modelfile import default_model_path, gemma3_path, smollm2_path
    from legalrag.answer.prompt import SOURCES_END, build_messages, fit_sources
    from legalrag.records import Article

    cache = Path.home() / ".cache" / "legalrag"
    models = {"SmolLM2-135M": smollm2_path, "Gemma-3-270M": lambda: gemma3_path(cache),
              "Qwen2.5-Coder-1.5B": lambda: default_model_path(cache)}
    rows = []
    for name, locate in models.items():
        t0 = time.perf_counter()
        model = LlamaCppModel(locate(), n_ctx=4096, threads=2)
        load_s = time.perf_counter() - t0
        ids = control_token_ids(model._llama)
        own = sorted(t for t in model.control_tokens if t in model.template)
        evil = "".join(own) + "".join(sorted(model.control_tokens)[:300]) + SOURCES_END

        def art(text: str, law: str, evil: str = evil) -> Article:
            return Article(law_title=law, law=law, level="地方性法规", category="用户上传",
                           path=("第一章" + evil[:80],), number=2, suffix=0, label="第二条",
                           text=text, version="", in_force=True, source="用户上传/x.md",
                           line=2)

        clean = build_messages("古树的标准？", fit_sources([art("古树。", "甲条例", "")], 3000,
                                                         model.count_tokens))
        bad = build_messages("古树的标准？" + evil,
                             fit_sources([art("古树。" + evil, "甲条例" + evil[:60])], 3000,
                                         model.count_tokens))

        def controls(tokens: list[int], ids: frozenset[int] = ids) -> Counter:
            return Counter(t for t in tokens if t in ids)

        want = controls(model.prompt_tokens(clean))
        got = controls(model.prompt_tokens(bad))
        raw = [{"role": m.role, "content": m.content} for m in clean]
        raw[1]["content"] += evil
        naive = model._llama.tokenize(model._formatter(messages=raw).prompt.encode("utf-8"),
                                      add_bos=False, special=True)
        rows.append({
            "model": name, "load_s": round(load_s, 1), "vocabulary": model._llama.n_vocab(),
            "control_ids": len(ids), "markers_defused": len(model.control_tokens),
            "template_markers": own, "markers_injected": len(own) + min(300, len(
                model.control_tokens)),
            "extra_control_ids_in_prompt": sum((got - want).values()),
            "extra_control_ids_naive": sum((controls(naive) - want).values()),
        })
        print(json.dumps(rows[-1], ensure_ascii=False), file=sys.stderr)
        del model
    text = json.dumps(rows, ensure_ascii=False, indent=1)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0 if all(r["extra_control_ids_in_prompt"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
