#!/usr/bin/env bash
# Size of the code base: lines of TypeScript per workspace (src / tests) and its largest source
# file, then how much code repeats itself (the `duplicates` tool, where it is installed).
#   bash scripts/code-stats.sh [DIR]      (default: this checkout)
set -euo pipefail
DIR="$(cd "${1:-$(dirname "${BASH_SOURCE[0]}")/..}" && pwd)"
cd "$DIR"
lines() { if [ -d "$1" ]; then find "$1" -name '*.ts' -print0 | xargs -0 -r cat | wc -l; else echo 0; fi; }
printf '%-22s %7s %7s  %s\n' workspace src tests 'largest source file'
total=0
for ws in packages/* apps/*; do
  [ -f "$ws/package.json" ] || continue
  src=$(lines "$ws/src")
  tests=$(( $(lines "$ws/test") + $(lines "$ws/bench") ))
  largest=$(find "$ws/src" -name '*.ts' -print0 2>/dev/null | xargs -0 -r wc -l | grep -v ' total$' | sort -n | tail -1 | awk '{print $2 " (" $1 ")"}')
  total=$((total + src))
  printf '%-22s %7s %7s  %s\n' "$ws" "$src" "$tests" "${largest#$ws/src/}"
done
printf '%-22s %7s %7s\n' 'all src' "$total" ''
printf '%-22s %7s\n' 'tests/ (e2e)' "$(lines tests)"
if command -v duplicates >/dev/null; then
  echo
  duplicates --repo "$DIR" --seconds 120 --most 1 | head -1
fi
