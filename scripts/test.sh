#!/usr/bin/env bash
# The project's one test command (README, .ci/run).
#
#   scripts/test.sh [extra pytest arguments]
#
# 1. installs what the end-to-end tests need and is not already there:
#    kcat (Debian package) and a Python virtualenv in ./.venv with
#    tests/e2e/requirements.txt;
# 2. builds the broker (debug) and runs the Rust tests of the whole workspace;
# 3. runs the end-to-end suite (tests/e2e, pytest) against the debug binary.
#
# Idempotent: a second run skips every install step. Honours CARGO_TARGET_DIR.
# Exits non-zero if any step fails.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

step() { printf '\n==> %s\n' "$*"; }
SECONDS=0

# --- kcat -------------------------------------------------------------------
if ! command -v kcat >/dev/null 2>&1; then
    step "installing kcat (apt)"
    SUDO=""
    if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends kcat
fi

# --- Python virtualenv ------------------------------------------------------
VENV="$ROOT/.venv"
REQS="$ROOT/tests/e2e/requirements.txt"
STAMP="$VENV/.requirements.sha256"
if [ ! -x "$VENV/bin/python" ]; then
    step "creating $VENV"
    "${PYTHON:-python3}" -m venv "$VENV"
fi
want="$(sha256sum "$REQS" | cut -d' ' -f1)"
have="$(cat "$STAMP" 2>/dev/null || true)"
if [ "$want" != "$have" ]; then
    step "installing tests/e2e/requirements.txt"
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q -r "$REQS"
    echo "$want" >"$STAMP"
fi

# --- Rust -------------------------------------------------------------------
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
case "$TARGET_DIR" in
    /*) ;;
    *) TARGET_DIR="$ROOT/$TARGET_DIR" ;;
esac

step "cargo build -p odradek"
cargo build -p odradek

step "cargo test --workspace"
cargo test --workspace

# --- End to end -------------------------------------------------------------
export ODRADEK_BIN="$TARGET_DIR/debug/odradek"
if [ ! -x "$ODRADEK_BIN" ]; then
    echo "error: $ODRADEK_BIN was not built" >&2
    exit 1
fi

step "pytest tests/e2e (broker: $ODRADEK_BIN)"
"$VENV/bin/python" -m pytest tests/e2e -q "$@"

step "all tests passed in ${SECONDS}s"
