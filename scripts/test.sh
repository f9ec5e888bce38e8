#!/usr/bin/env bash
# Runs every test of the project on a fresh machine, installing what the
# tests need: the pinned Python tools (moto, cfn-lint, cargo-lambda) in
# .venv, and the npm packages of infra/. Servers the tests use are started
# on 127.0.0.1 by the scripts that need them and stopped when they end.
#
#   scripts/test.sh          everything
#   SKIP_INFRA=1 scripts/test.sh   everything but the CDK stack tests
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"
export PATH="$VENV/bin:$HOME/.cargo/bin:$PATH"
# Two cores: keep parallel rustc jobs from starving each other of memory.
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"

step() { printf '\n==> %s\n' "$*"; }
started=$(date +%s)

step "installing the test tools"
ensure_venv

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test (unit, simulator scenarios, property tests)"
cargo test --workspace --locked

step "example scenarios through the command line"
for scenario in examples/*.toml; do
    cargo run --quiet --locked -p gpu-recovery -- simulate "$scenario" --format json >/dev/null
    echo "ok $scenario"
done

step "cargo lambda build --release --output-format zip"
cargo lambda build --release --locked --output-format zip -p gpu-recovery-lambda
for name in ecs-task-handler dcgm-task-monitor ecs-instance-monitor recovery-watchdog; do
    test -s "target/lambda/$name/bootstrap.zip" || { echo "missing target/lambda/$name/bootstrap.zip" >&2; exit 1; }
done

step "AWS adapters and Lambda functions against moto"
bash scripts/test-aws.sh

if [ -z "${SKIP_INFRA:-}" ]; then
    step "CDK stack"
    LAMBDA_ASSET_DIR="$REPO_ROOT/target/lambda" bash infra/scripts/test.sh
fi

step "all tests passed in $(( $(date +%s) - started ))s"
