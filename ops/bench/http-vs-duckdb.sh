#!/usr/bin/env bash
# End to end over HTTP: `rhizome dev` (release, three Raft nodes in one process) with TPC-H
# lineitem loaded through INSERT, P1–P6 timed and checked, P1 throughput from 16 clients,
# then DuckDB timed on the same rows for the ratios.
#   ops/bench/http-vs-duckdb.sh [SCALE_FACTOR]   (default 1; 0.1 for a quick run)
# Installs DuckDB from PyPI into a virtualenv under target/ on first use.
set -euo pipefail
cd "$(dirname "$0")/../.."
sf="${1:-1}"
venv=target/bench-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet duckdb
fi
RHIZOME_BENCH_SF="$sf" RHIZOME_BENCH_DUCKDB_PYTHON="$PWD/$venv/bin/python" \
  cargo bench -p rhizome-coordinator --bench http_lineitem
