#!/usr/bin/env bash
# Rhizome's single-shard lineitem benchmark and DuckDB on the same rows, side by side.
#   ops/bench/lineitem-vs-duckdb.sh [SCALE_FACTOR]   (default 1)
# Installs DuckDB from PyPI into a virtualenv under target/ on first use.
set -euo pipefail
cd "$(dirname "$0")/../.."
sf="${1:-1}"
venv=target/bench-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet duckdb
fi
csv="$PWD/target/lineitem-sf$sf.csv"
queries=bench/tpch-lineitem-queries.sql
# First run: generate (and export) the rows, time Rhizome against the reference figures.
RHIZOME_BENCH_SF="$sf" RHIZOME_BENCH_CSV="$csv" RHIZOME_BENCH_RUNS=1 \
  cargo bench -p rhizome-core --bench lineitem >/dev/null
duckdb_ms=$("$venv/bin/python" ops/bench/duckdb_lineitem.py "$csv" "$queries" 5 | tee /dev/stderr | sed -n 's/^DUCKDB_MS=//p')
RHIZOME_BENCH_SF="$sf" RHIZOME_BENCH_DUCKDB_MS="$duckdb_ms" cargo bench -p rhizome-core --bench lineitem
rm -f "$csv"
