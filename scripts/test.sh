#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite, slow and browser tests included.
#   bash scripts/test.sh            # everything
#   bash scripts/test.sh -k index   # extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
if [ $rc -eq 5 ]; then
    echo "legalrag: pytest collected no tests: that is a failure here" >&2
    exit 1
fi
exit $rc
