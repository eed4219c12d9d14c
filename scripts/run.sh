#!/usr/bin/env bash
# Runs corelab on its embedded default (SQLite + local files in ./corelab-data, no other service).
# First builds the reader workstation's bundle (web/viewer, needs Node.js and npm; skipped with a note
# when they are missing, the rest of corelab works without it), then `corelab serve`.
# Without arguments it starts the demo trial (`serve --demo`: demo accounts for every role, printed at
# start; docs/demo.md). Arguments replace that: `bash scripts/run.sh` for the demo,
# `bash scripts/run.sh --config corelab.toml` (or any `corelab serve` flags) for a real installation.
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
  bash scripts/build-viewer.sh || echo "run: the reader workstation bundle was not built (see above); serving without it" >&2
else
  echo "run: Node.js/npm not found: the reader workstation will say how to build it (docs/viewer.md)" >&2
fi

if [ $# -eq 0 ]; then
  set -- --demo
fi
exec cargo run --release -p corelab -- serve "$@"
