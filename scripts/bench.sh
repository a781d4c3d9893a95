#!/usr/bin/env bash
# Benchmarks for the launch path (a benchmark, not a test): prints the figures the issues ask for.
#   bash scripts/bench.sh            all of them
#   bash scripts/bench.sh a d        only some (a: API->running vs virsh create, b: API->SSH,
#                                    c: launches/s on test:///default, d: GET /v1/instances with 1000,
#                                    e: volumes, f: VPC ruleset 100 VPCs/500 instances/200 EIPs,
#                                    g: security groups 100..1000 instances, 5000 rules,
#                                    h: API call -> first packet for EIP moves and group changes)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$ROOT/scripts/setup.sh"
cd "$ROOT"
exec node --import tsx scripts/bench.ts "$@"
