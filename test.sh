#!/usr/bin/env bash
# Runs every test of the project. CI (.ci/run) runs exactly this after installing what it needs.
set -euo pipefail
cd "$(dirname "$0")"
cargo test --workspace --release
