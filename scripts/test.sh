#!/usr/bin/env bash
# Quick start, command 2: install what is missing, then run lint, format and type checks and the
# whole test suite (unit, integration against real Redis/SQLite/libvirt/bridges/nftables, and
# end-to-end runs that boot real guests). Extra arguments go to jest (e.g. a path filter).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$ROOT/scripts/setup.sh"
cd "$ROOT"
if [ $# -eq 0 ]; then
  say "lint, format and type checks"
  npx eslint . --max-warnings=0
  npx prettier --check . --log-level=warn
  npx tsc -p tsconfig.json --noEmit
  node --import tsx scripts/check-imports.ts
fi
say "tests"
exec node --experimental-vm-modules node_modules/jest/bin/jest.js --runInBand "$@"
