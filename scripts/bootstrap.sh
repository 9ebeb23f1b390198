#!/usr/bin/env bash
# Idempotent set-up: a Python venv with liqbot (+ dev tools) and the pinned npm packages
# (anvil, Aave V3, Uniswap V2, solc). Each part re-runs only when its inputs changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "liqbot needs Python >= 3.11 (set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi
command -v npm >/dev/null || { echo "liqbot needs node and npm on PATH" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  echo "set-up: creating .venv" >&2
  "$PYTHON" -m venv .venv
fi
py_stamp=.venv/.liqbot-installed
py_want=$(cat pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$py_stamp" ] || [ "$(cat "$py_stamp")" != "$py_want" ]; then
  echo "set-up: installing liqbot into .venv" >&2
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev]"
  echo "$py_want" > "$py_stamp"
fi

npm_stamp=node_modules/.liqbot-installed
npm_want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f "$npm_stamp" ] || [ "$(cat "$npm_stamp")" != "$npm_want" ]; then
  echo "set-up: installing npm packages" >&2
  # Not `npm ci`: npm records only this platform's optional anvil binary in the lock and
  # then `npm ci` rejects its own lock. `npm install` installs the locked, exactly pinned
  # versions and leaves the lock file unchanged.
  npm install --no-audit --no-fund --loglevel=error >&2
  echo "$npm_want" > "$npm_stamp"
fi

# PostgreSQL server binaries, for the shared-store tests (tests/pg.py runs a throwaway
# server; the bot itself only needs a postgresql:// URL). Installed only when missing.
if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "set-up: installing PostgreSQL (apt-get)" >&2
    export DEBIAN_FRONTEND=noninteractive
    # A fresh machine may have no package lists yet: update once, only if needed.
    apt-get install -y -q postgresql >&2 \
      || { apt-get update -q >&2 && apt-get install -y -q postgresql >&2; }
  else
    echo "set-up: warning: PostgreSQL (initdb) not found; the PostgreSQL store tests will" \
      "fail: install the postgresql package" >&2
  fi
fi

# The compiled health-factor kernel (cached by source hash, so this is instant once built).
# Without a C compiler the bot still runs, on the slower pure-Python evaluator.
.venv/bin/python -c 'from bot.native import build; build("aave_hf")' \
  || echo "set-up: warning: the native kernel was not built (no C compiler?)" >&2

# Morpho Blue (devnet only): compiled from the pinned npm sources into ~/.cache/liqbot/morpho/.
.venv/bin/python -c 'from bot.devnet import morpho_build; morpho_build.build()'
