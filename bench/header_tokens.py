"""What the source headers cost in prompt tokens, with and without the 编/章/节.

    .venv/bin/python bench/header_tokens.py [ANSWERS_JSON]

Reads an `legalrag eval-answers` answers.json (default: the whole-dev run in
bench/results/answers/dev), rebuilds each answer's source headers both ways with the
product's own `prompt.source_header`, and counts them with the default model's tokenizer
(its GGUF vocabulary only; no weights are loaded). Prints the median and mean per prompt.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main() -> int:
    from llama_cpp import Llama

    from legalrag.answer.modelfile import chat_model_path
    from legalrag.answer.prompt import source_header
    from legalrag.config import Settings
    from legalrag.records import Article

    path = Path(sys.argv[1]) if len(sys.argv) > 1 else (
        ROOT / "bench/results/answers/dev/answers.json")
    vocab = Llama(str(chat_model_path(Settings.load())), vocab_only=True, verbose=False)

    def count(text: str) -> int:
        return len(vocab.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    fields = set(Article.__dataclass_fields__)
    full, bare = [], []
    for q in json.loads(path.read_text(encoding="utf-8"))["questions"]:
        hits = {h["id"]: h for h in q["answer"]["hits"]}
        articles = [Article(**{k: v for k, v in hits[s["id"]].items() if k in fields}
                            | {"path": tuple(hits[s["id"]]["path"]), "line": 0,
                               "category": ""})
                    for s in q["answer"]["sources"] if s["id"] in hits]
        full.append(sum(count(source_header(n, a)) for n, a in enumerate(articles, 1)))
        bare.append(sum(count(source_header(n, a, hierarchy=False))
                        for n, a in enumerate(articles, 1)))
    print(f"{len(full)} prompts; header tokens per prompt, median / mean: "
          f"with 编/章/节 {statistics.median(full)} / {statistics.mean(full):.1f}, "
          f"without {statistics.median(bare)} / {statistics.mean(bare):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
