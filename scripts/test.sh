#!/usr/bin/env bash
# The test command: install (idempotent), lint, type-check, then the suite against the real local stack.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/lint-imports
.venv/bin/pytest -x -m "not slow and not fault" "$@"   # the fault suite: .venv/bin/pytest -m fault
