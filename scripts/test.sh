#!/usr/bin/env bash
# Set up (idempotent) and run the tests.
#   bash scripts/test.sh            # everything: slow and browser tests included (CI)
#   bash scripts/test.sh --fast     # the fast tier: pure tests and the import contracts
#   bash scripts/test.sh -k index   # extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."
fast=0
if [ "${1:-}" = "--fast" ]; then
    fast=1
    shift
fi
bash scripts/setup.sh --test
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
set +e
if [ $fast = 1 ]; then
    .venv/bin/python -m pytest -m fast "$@"
else
    .venv/bin/python -m pytest "$@"
fi
rc=$?
set -e
if [ $rc -eq 5 ]; then
    echo "legalrag: pytest collected no tests: that is a failure here" >&2
    exit 1
fi
exit $rc
