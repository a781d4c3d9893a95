#!/usr/bin/env bash
# Soak benchmark (a benchmark, not a test): launch/terminate cycles on test:///default, then host
# objects against their baseline and API/worker RSS growth.
#   bash scripts/soak.sh [cycles=1000] [batch=20]
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$ROOT/scripts/setup.sh"
cd "$ROOT"
exec node --import tsx scripts/soak.ts "$@"
