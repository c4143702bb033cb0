#!/usr/bin/env bash
# The project's test command (README "Run the tests"): every crate's unit, property,
# golden-file and cluster tests. Needs only a Rust toolchain (cargo); everything else is
# fetched from crates.io by cargo.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --locked "$@"
