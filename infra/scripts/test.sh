#!/usr/bin/env bash
# Checks the CDK app in infra/: installs its npm packages, type-checks it,
# synthesizes the stack offline, then runs the tests (template assertions,
# cdk-nag, cfn-lint, docs/permissions.md, and a deployment to moto).
#
# Environment:
#   LAMBDA_ASSET_DIR  required: folder with <function>/bootstrap.zip for the four functions
#   VENV              Python virtualenv with cfn-lint and moto (default: the repository's .venv)
#   MOTO_ENDPOINT     moto server to deploy to; when unset, this script starts its own
set -euo pipefail

INFRA_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO_ROOT="$(cd "$INFRA_DIR/.." && pwd)"
FUNCTIONS=(ecs-task-handler dcgm-task-monitor ecs-instance-monitor recovery-watchdog)

if [ -z "${LAMBDA_ASSET_DIR:-}" ]; then
    echo "LAMBDA_ASSET_DIR is not set: point it at the folder that 'cargo lambda build --release --output-format zip' writes (target/lambda)" >&2
    exit 2
fi
# A relative path is taken from the caller's working directory.
LAMBDA_ASSET_DIR="$(cd "$LAMBDA_ASSET_DIR" && pwd)"
for name in "${FUNCTIONS[@]}"; do
    if [ ! -f "$LAMBDA_ASSET_DIR/$name/bootstrap.zip" ]; then
        echo "LAMBDA_ASSET_DIR is $LAMBDA_ASSET_DIR, but $name/bootstrap.zip is missing there" >&2
        exit 2
    fi
done

export VENV="${VENV:-$REPO_ROOT/.venv}"
# shellcheck source=../../scripts/lib.sh
source "$REPO_ROOT/scripts/lib.sh"
ensure_venv
if [ -z "${MOTO_ENDPOINT:-}" ]; then
    start_moto
    trap stop_moto EXIT
fi

# Synth and the tests run with a minimal environment. It has no AWS
# credentials or profile, and it turns off instance metadata lookups and the
# CDK CLI's telemetry and version check. Its proxy is a closed local port, so
# a request meant for the internet fails at once instead of leaving this
# machine. Requests to moto on 127.0.0.1 bypass the proxy.
offline_env=(
    env -i
    PATH="$PATH"
    HOME="${HOME:-/tmp}"
    LANG=C.UTF-8
    CI="${CI:-}"
    AWS_CONFIG_FILE=/dev/null
    AWS_SHARED_CREDENTIALS_FILE=/dev/null
    AWS_EC2_METADATA_DISABLED=true
    CDK_DISABLE_CLI_TELEMETRY=true
    CDK_DISABLE_VERSION_CHECK=true
    HTTP_PROXY=http://127.0.0.1:9
    HTTPS_PROXY=http://127.0.0.1:9
    NO_PROXY=127.0.0.1,localhost
    LAMBDA_ASSET_DIR="$LAMBDA_ASSET_DIR"
)

cd "$INFRA_DIR"

echo "==> npm ci"
npm ci --no-audit --no-fund --loglevel=error

echo "==> tsc --noEmit"
npx --no-install tsc --noEmit -p .

CDK_OUT_DIR="$INFRA_DIR/cdk.out"
rm -rf "$CDK_OUT_DIR"
echo "==> cdk synth (offline, no AWS credentials)"
"${offline_env[@]}" ECS_CLUSTER_NAME=gpu-training \
    npx --no-install cdk synth --quiet --output "$CDK_OUT_DIR"

echo "==> tests"
"${offline_env[@]}" VENV="$VENV" MOTO_ENDPOINT="$MOTO_ENDPOINT" CDK_OUT_DIR="$CDK_OUT_DIR" \
    node --import tsx --test test/*.test.ts
