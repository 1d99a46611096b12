#!/usr/bin/env bash
# Set up (idempotent), build the index on first run, and start the browser chat.
#   bash scripts/start.sh                 # http://127.0.0.1:7860/
#   bash scripts/start.sh --port 8000     # extra arguments go to `legalrag serve`
# First run on a fresh 2-core machine: set-up ~10 min (llama.cpp compiles), then the
# keyword index ~1 min before the chat opens; embeddings finish ~7 min later in the
# background. Later runs start in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec .venv/bin/python app.py "$@"
