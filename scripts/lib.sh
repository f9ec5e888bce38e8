# Shared shell functions for the test scripts: the Python virtualenv with the
# pinned test tools, and a moto server on a free port of 127.0.0.1.
# Source this file; it defines functions and changes nothing by itself.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$REPO_ROOT/.venv}"

# Creates .venv and installs scripts/requirements.txt into it, unless the
# installed set already matches the file.
ensure_venv() {
    local stamp="$VENV/.requirements.sha256"
    local want
    want="$(sha256sum "$REPO_ROOT/scripts/requirements.txt" | cut -d' ' -f1)"
    if [ -x "$VENV/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
        return 0
    fi
    echo "==> installing test tools into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check --upgrade pip
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REPO_ROOT/scripts/requirements.txt"
    echo "$want" >"$stamp"
}

# Prints a TCP port on 127.0.0.1 that nothing listens on right now.
free_port() {
    "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Starts moto server on 127.0.0.1 and a free port, waits until it answers, and
# exports MOTO_ENDPOINT, MOTO_PID and the AWS variables that point the SDKs at it.
start_moto() {
    local port log
    port="$(free_port)"
    log="${MOTO_LOG:-$REPO_ROOT/target/moto-$port.log}"
    mkdir -p "$(dirname "$log")"
    "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
    MOTO_PID=$!
    export MOTO_PID
    export MOTO_ENDPOINT="http://127.0.0.1:$port"
    local tries=0
    until "$VENV/bin/python" -c "import urllib.request,sys; urllib.request.urlopen('$MOTO_ENDPOINT/moto-api/data.json', timeout=1)" 2>/dev/null; do
        tries=$((tries + 1))
        if [ "$tries" -gt 100 ] || ! kill -0 "$MOTO_PID" 2>/dev/null; then
            echo "moto server did not start on $MOTO_ENDPOINT; its log follows:" >&2
            cat "$log" >&2
            return 1
        fi
        sleep 0.2
    done
    export AWS_ENDPOINT_URL="$MOTO_ENDPOINT"
    export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_SESSION_TOKEN=testing
    export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
    echo "==> moto server on $MOTO_ENDPOINT (pid $MOTO_PID)"
}

# Stops the moto server that start_moto started, if it still runs.
stop_moto() {
    if [ -n "${MOTO_PID:-}" ] && kill -0 "$MOTO_PID" 2>/dev/null; then
        kill "$MOTO_PID" 2>/dev/null || true
        wait "$MOTO_PID" 2>/dev/null || true
    fi
    MOTO_PID=""
}
