#!/usr/bin/env bash
# Runs the AWS adapter tests and the Lambda functions against moto server on
# 127.0.0.1, never against AWS.
#
# Starts moto unless MOTO_ENDPOINT is already set (and then stops only what
# it started), sets moto's ECS state manager so tasks stay RUNNING until
# stopped, starts the proxy that fills gaps of moto 5.2.5 for DynamoDB and
# SSM (adapters/aws/tests/moto/moto_gap_proxy.py lists them), runs the moto
# test target of gpu-recovery-aws,
# then runs each Lambda binary under `cargo lambda watch` and invokes it with
# sample events. Fails, never skips, when a tool is missing.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

started=$(date +%s)
ensure_venv
for tool in moto_server cargo-lambda python; do
    if [ ! -x "$VENV/bin/$tool" ]; then
        echo "error: $VENV/bin/$tool is missing; delete $VENV and rerun to reinstall scripts/requirements.txt" >&2
        exit 1
    fi
done

work="$(mktemp -d)"
started_moto=""
proxy_pid=""
watch_pid=""
cleanup() {
    if [ -n "$watch_pid" ] && kill -0 "$watch_pid" 2>/dev/null; then
        kill -- "-$watch_pid" 2>/dev/null || kill "$watch_pid" 2>/dev/null || true
        wait "$watch_pid" 2>/dev/null || true
    fi
    if [ -n "$proxy_pid" ] && kill -0 "$proxy_pid" 2>/dev/null; then
        kill "$proxy_pid" 2>/dev/null || true
        wait "$proxy_pid" 2>/dev/null || true
    fi
    if [ -n "$started_moto" ]; then
        stop_moto
    fi
    rm -rf "$work"
}
trap cleanup EXIT

if [ -z "${MOTO_ENDPOINT:-}" ]; then
    start_moto
    started_moto=1
else
    echo "==> using moto server at $MOTO_ENDPOINT"
fi
case "$MOTO_ENDPOINT" in
    http://127.0.0.1:*) ;;
    *)
        echo "error: MOTO_ENDPOINT is $MOTO_ENDPOINT; expected http://127.0.0.1:PORT" >&2
        exit 1
        ;;
esac
export AWS_ENDPOINT_URL="$MOTO_ENDPOINT"
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_SESSION_TOKEN=testing
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
# No shared config or credentials file of this machine may change the endpoint.
export AWS_CONFIG_FILE="$work/aws-config" AWS_SHARED_CREDENTIALS_FILE="$work/aws-credentials"
: >"$AWS_CONFIG_FILE"
: >"$AWS_SHARED_CREDENTIALS_FILE"
unset AWS_PROFILE

# moto emits no ECS events, and by default it advances a task one state per
# DescribeTasks. The tests inject the events, so tasks must stay where they are.
"$VENV/bin/python" - "$MOTO_ENDPOINT" <<'PY'
import json, sys, urllib.request
body = json.dumps({"model_name": "ecs::task",
                   "transition": {"progression": "manual", "times": 1000000}}).encode()
request = urllib.request.Request(sys.argv[1] + "/moto-api/state-manager/set-transition",
                                 data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
urllib.request.urlopen(request, timeout=10).read()
PY

proxy_port="$(free_port)"
"$VENV/bin/python" adapters/aws/tests/moto/moto_gap_proxy.py "$proxy_port" "$MOTO_ENDPOINT" \
    >"$work/proxy.log" 2>&1 &
proxy_pid=$!
for _ in $(seq 1 100); do
    if "$VENV/bin/python" -c "import socket,sys; socket.create_connection(('127.0.0.1', $proxy_port), 1)" 2>/dev/null; then
        break
    fi
    if ! kill -0 "$proxy_pid" 2>/dev/null; then
        echo "error: the moto gap proxy did not start; its log follows:" >&2
        cat "$work/proxy.log" >&2
        exit 1
    fi
    sleep 0.1
done
export AWS_ENDPOINT_URL_SSM="http://127.0.0.1:$proxy_port"
export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$proxy_port"

echo "==> adapter and recovery tests against moto"
cargo test -p gpu-recovery-aws --test moto -- --test-threads=4

echo "==> Lambda functions under cargo lambda watch"
cargo build -p gpu-recovery-lambda -p gpu-recovery
export PATH="$VENV/bin:$PATH"

# The functions need the tables and the cluster to exist in moto. The CLI
# creates the tables and submits a two-node job on two registered instances.
tables_prefix="lambda-$$"
export TASK_TABLE_NAME="$tables_prefix-ecs_task" JOB_TABLE_NAME="$tables_prefix-ecs_job" \
    NODE_TABLE_NAME="$tables_prefix-ecs_node"
cli=target/debug/gpu-recovery
"$cli" tables create
if ! "$cli" tables create | grep -q "exists with every index"; then
    echo "error: a second tables create did not report the tables as existing" >&2
    exit 1
fi
fixtures_py=adapters/aws/tests/moto/lambda_fixtures.py
fixtures=adapters/eventbridge/tests/fixtures
"$VENV/bin/python" "$fixtures_py" cluster "$MOTO_ENDPOINT" "$work"
topic_arn="$(cat "$work/topic")"
export ECS_CLUSTER_NAME=gpu-training
"$cli" submit "$work/job.toml"
"$cli" status
"$cli" status lambda-job --output json >"$work/status.json"
"$VENV/bin/python" "$fixtures_py" events "$work" "$fixtures"

invoke_port="$(free_port)"
env_file="$work/function.env"
{
    echo "AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL"
    echo "AWS_ENDPOINT_URL_SSM=$AWS_ENDPOINT_URL_SSM"
    echo "AWS_ENDPOINT_URL_DYNAMODB=$AWS_ENDPOINT_URL_DYNAMODB"
    echo "AWS_ACCESS_KEY_ID=testing"
    echo "AWS_SECRET_ACCESS_KEY=testing"
    echo "AWS_SESSION_TOKEN=testing"
    echo "AWS_REGION=us-east-1"
    echo "AWS_CONFIG_FILE=$AWS_CONFIG_FILE"
    echo "AWS_SHARED_CREDENTIALS_FILE=$AWS_SHARED_CREDENTIALS_FILE"
    echo "TASK_TABLE_NAME=$TASK_TABLE_NAME"
    echo "JOB_TABLE_NAME=$JOB_TABLE_NAME"
    echo "NODE_TABLE_NAME=$NODE_TABLE_NAME"
    echo "ECS_CLUSTER_NAME=gpu-training"
    echo "DCGM_HEALTH_CHECK_TASK=gpu-dcgm-health-check"
    echo "SNS_TOPIC_ARN=$topic_arn"
    echo "RUST_LOG=info"
} >"$env_file"
# setsid puts the watcher and the functions it runs in one process group,
# so cleanup stops them all.
setsid cargo lambda watch -p gpu-recovery-lambda -A 127.0.0.1 -P "$invoke_port" \
    --env-file "$env_file" --ignore-changes >"$work/watch.log" 2>&1 &
watch_pid=$!
for _ in $(seq 1 300); do
    if "$VENV/bin/python" -c "import socket; socket.create_connection(('127.0.0.1', $invoke_port), 1)" 2>/dev/null; then
        break
    fi
    if ! kill -0 "$watch_pid" 2>/dev/null; then
        echo "error: cargo lambda watch exited; its log follows:" >&2
        cat "$work/watch.log" >&2
        exit 1
    fi
    sleep 0.2
done

printf '%s\n' '{"version": "0", "id": "5f0c8b7e-1a2b-4c3d-9e8f-0a1b2c3d4e5f",' \
    ' "detail-type": "Scheduled Event", "source": "aws.events", "account": "123456789012",' \
    ' "time": "2026-11-20T09:20:00Z", "region": "us-east-1",' \
    ' "resources": ["arn:aws:events:us-east-1:123456789012:rule/recovery-watchdog"], "detail": {}}' \
    >"$work/schedule.json"

failures=0
# invoke FUNCTION EVENT_FILE PATTERN: the output must match the extended regex.
invoke() {
    local function="$1" data="$2" pattern="$3" output
    output="$(cargo lambda invoke "$function" -A 127.0.0.1 -P "$invoke_port" --data-file "$data" 2>&1 || true)"
    if printf '%s' "$output" | grep -qE -- "$pattern"; then
        echo "ok: $function $(basename "$data") matches /$pattern/"
    else
        echo "FAILED: $function $(basename "$data"): expected /$pattern/ in:" >&2
        printf '%s\n' "$output" >&2
        failures=$((failures + 1))
    fi
}
invoke ecs-task-handler "$work/rank0-stopped.json" '"to": ?"PENDING_HEALTHCHECK"'
invoke ecs-task-handler "$fixtures/healthcheck-stopped-exit1-node-a.json" 'handled by dcgm-task-monitor, not ecs-task-handler'
invoke ecs-task-handler "$work/malformed.json" 'event field detail.taskArn is missing'
invoke dcgm-task-monitor "$fixtures/healthcheck-stopped-exit1-node-a.json" 'the event concerns no job the engine tracks'
invoke ecs-instance-monitor "$fixtures/container-instance-agent-reconnected-node-a.json" 'the event concerns no job the engine tracks'
invoke recovery-watchdog "$work/schedule.json" '"outcome": ?"handled"'
invoke recovery-watchdog "$fixtures/task-stopped-exit1-gpu.json" '"outcome": ?"skipped"'

if ! "$cli" status lambda-job | grep -q "^status *PENDING_HEALTHCHECK"; then
    echo "FAILED: the job did not reach PENDING_HEALTHCHECK after ecs-task-handler ran" >&2
    "$cli" status lambda-job >&2 || true
    failures=$((failures + 1))
fi
if ! grep -q '"request_id"' "$work/watch.log"; then
    echo "FAILED: the function logs carry no request_id field; the watch log follows:" >&2
    cat "$work/watch.log" >&2
    failures=$((failures + 1))
fi

elapsed=$(($(date +%s) - started))
if [ "$failures" -gt 0 ]; then
    echo "scripts/test-aws.sh: $failures Lambda check(s) failed after ${elapsed}s" >&2
    exit 1
fi
echo "scripts/test-aws.sh: all checks passed in ${elapsed}s"
