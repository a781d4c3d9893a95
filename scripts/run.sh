#!/usr/bin/env bash
# Quick start, command 1: install what is missing, then run minicloud (API + worker) in the
# foreground. Settings come from MINICLOUD_* variables (see README).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$ROOT/scripts/setup.sh"
cd "$ROOT"
export MINICLOUD_DEFAULT_IMAGE="${MINICLOUD_DEFAULT_IMAGE:-$MINICLOUD_TEST_IMAGE}"
exec node --import tsx apps/server/src/main.ts serve "$@"
