# Shared by scripts/setup.sh, run.sh and test.sh. Sourced, not run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
say() { printf '\033[1m[minicloud]\033[0m %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }
