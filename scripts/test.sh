#!/usr/bin/env bash
# Run the test suite on a fresh machine (setup included):   bash scripts/test.sh [pytest args...]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
bash scripts/setup.sh
set +u; source env.sh; set -u
python -m pytest "$@"
