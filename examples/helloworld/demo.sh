#!/bin/sh
# Run the helloworld demo: start greeter_server.py on a free loopback port,
# run greeter_client.py against it, check the replies, always stop the server.
#
# Usage: sh examples/helloworld/demo.sh [PYTHON]
# PYTHON must have our `grpc` package and protobuf installed (default: python3).
# `make demo` runs this under `timeout`.

set -u

PY=${1:-python3}
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/grpcgo-demo.XXXXXX") || exit 1
SERVER_LOG="$WORK/server.log"
CLIENT_LOG="$WORK/client.log"
SERVER_PID=
CLIENT_PID=

cleanup() {
    if [ -n "$CLIENT_PID" ] && kill -0 "$CLIENT_PID" 2>/dev/null; then
        kill "$CLIENT_PID" 2>/dev/null
        wait "$CLIENT_PID" 2>/dev/null
    fi
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null
        i=0
        while kill -0 "$SERVER_PID" 2>/dev/null && [ "$i" -lt 50 ]; do
            sleep 0.1
            i=$((i + 1))
        done
        kill -9 "$SERVER_PID" 2>/dev/null
        wait "$SERVER_PID" 2>/dev/null
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() {
    echo "demo: FAIL: $*" >&2
    if [ -s "$SERVER_LOG" ]; then
        echo "--- server output ---" >&2
        cat "$SERVER_LOG" >&2
    fi
    if [ -s "$CLIENT_LOG" ]; then
        echo "--- client output ---" >&2
        cat "$CLIENT_LOG" >&2
    fi
    exit 1
}

"$PY" -c 'import grpc, os, glob, sys
d = os.path.dirname(grpc.__file__)
if not glob.glob(os.path.join(d, "_engine*")):
    sys.exit("demo: %s is not grpcgo (no _engine next to it)" % grpc.__file__)
print("demo: grpc %s from %s" % (grpc.__version__, d))' || exit 1

# Port 0: the kernel picks a free port; the server prints the one it bound.
"$PY" -u "$HERE/greeter_server.py" --port 0 >"$SERVER_LOG" 2>&1 &
SERVER_PID=$!

PORT=
i=0
while [ "$i" -lt 300 ]; do
    PORT=$(sed -n 's/^Server started, listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$SERVER_LOG")
    [ -n "$PORT" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || fail "server exited before it was ready"
    sleep 0.1
    i=$((i + 1))
done
[ -n "$PORT" ] || fail "server did not report a port within 30 s"
[ "$PORT" != 0 ] || fail "server could not bind a port"
echo "demo: server pid $SERVER_PID listening on 127.0.0.1:$PORT"

# The client runs in the background so that a TERM from an outer `timeout`
# interrupts `wait` at once and the EXIT trap stops both processes.
timeout 60 "$PY" -u "$HERE/greeter_client.py" --port "$PORT" --name grpcgo \
    >"$CLIENT_LOG" 2>&1 &
CLIENT_PID=$!
wait "$CLIENT_PID"
status=$?
CLIENT_PID=
[ "$status" -eq 0 ] || fail "client exited with status $status"
cat "$CLIENT_LOG"

for line in \
    "Greeter client received: Hello, grpcgo!" \
    "Greeter client received from stream: Hello number 0, grpcgo!" \
    "Greeter client received from stream: Hello number 1, grpcgo!" \
    "Greeter client received from stream: Hello number 2, grpcgo!"
do
    grep -qxF "$line" "$CLIENT_LOG" || fail "missing client output: $line"
done

kill -0 "$SERVER_PID" 2>/dev/null || fail "server died during the demo"
echo "demo: OK"
