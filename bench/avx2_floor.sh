#!/usr/bin/env bash
# The answer times on the project's floor, a 2-core CPU with AVX2 but no AVX-512 or VNNI,
# measured on a machine that has more: llama.cpp compiled for AVX2 only (into its own
# directory, the project's .venv untouched) and torch told to use its AVX2 kernels. The
# instructions the hardware would lack are not used; its clock and caches stay this
# machine's, so read the result as a lower bound on the floor's times.
#
#   bash bench/avx2_floor.sh [-n 60] [--out DIR]     # arguments go to legalrag eval-answers
#
# First run: ~5 min on 2 free cores to compile llama.cpp into $LEGALRAG_AVX2_LIB (default
# .venv-avx2-llama). Then the dev questions; compare with the same questions of
# bench/results/answers/dev, measured with the native build.
set -euo pipefail
cd "$(dirname "$0")/.."
LIB=${LEGALRAG_AVX2_LIB:-.venv-avx2-llama}
VERSION=$(.venv/bin/python -c "import importlib.metadata as m; print(m.version('llama_cpp_python'))")
if [ ! -f "$LIB/.built-$VERSION" ]; then
    echo "legalrag: compiling llama-cpp-python $VERSION for AVX2 only into $LIB"
    rm -rf "$LIB"
    CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)} \
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
-DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF \
-DGGML_AVX512_BF16=OFF -DGGML_AVX_VNNI=OFF" \
        .venv/bin/python -m pip install -q --disable-pip-version-check --no-cache-dir \
        --no-deps --no-binary llama-cpp-python --target "$LIB" "llama-cpp-python==$VERSION"
    touch "$LIB/.built-$VERSION"
fi
export PYTHONPATH="$PWD/$LIB${PYTHONPATH:+:$PYTHONPATH}"
export ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# Refuse to measure the wrong build.
.venv/bin/python - <<'EOF'
import llama_cpp
info = llama_cpp.llama_print_system_info().decode()
print(f"llama.cpp from {llama_cpp.__file__}: {info.strip()}")
if "AVX512" in info or "VNNI" in info or "AVX2 = 1" not in info:
    raise SystemExit("legalrag: the AVX2-only llama.cpp was not the one loaded")
import torch
print(f"torch CPU kernels: {torch.backends.cpu.get_cpu_capability()}")
if torch.backends.cpu.get_cpu_capability() != "AVX2":
    raise SystemExit("legalrag: torch is not on its AVX2 kernels")
EOF
.venv/bin/legalrag eval-answers data/eval/stard_train.jsonl --split dev "$@"
