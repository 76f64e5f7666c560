"""grpc-go's logs reach Python's logging (grpc.go.<component>), filtered by
grpcio's GRPC_VERBOSITY and GRPC_TRACE; Go writes nothing to stderr.

The environment is read when the engine loads, so each case runs in a
fresh interpreter that logs every record it receives as JSON on stdout."""

import json
import os
import re
import subprocess
import sys

import pytest

import certs

RUN_TIMEOUT = 60  # seconds per child interpreter; only a hang reaches it

CHILD = r"""
import json, logging, os, sys, threading, time
import grpc

records = []
class Collect(logging.Handler):
    def emit(self, record):
        records.append({"name": record.name, "level": record.levelname,
                        "message": record.getMessage(), "path": record.pathname,
                        "line": record.lineno, "thread": threading.current_thread().name})
logging.getLogger().addHandler(Collect())
logging.getLogger().setLevel(logging.DEBUG)

def wait_for(predicate):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.02)

case = sys.argv[1]
if case == "dial":
    # nothing listens on port 1 of loopback: every connection attempt fails
    channel = grpc.insecure_channel("127.0.0.1:1")
    try:
        grpc.channel_ready_future(channel).result(timeout=1)
    except grpc.FutureTimeoutError:
        pass
    wait_for(lambda: any("failed to connect" in r["message"] for r in records))
    channel.close()
elif case == "tls":
    # a TLS server, and a client speaking plaintext HTTP/2 to it
    from concurrent import futures
    read = lambda p: open(p, "rb").read()
    creds = grpc.ssl_server_credentials([(read(sys.argv[2]), read(sys.argv[3]))])
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    port = server.add_secure_port("127.0.0.1:0", creds)
    server.start()
    channel = grpc.insecure_channel("127.0.0.1:%d" % port)
    try:
        channel.unary_unary("/x.Y/Z")(b"", timeout=2)
    except grpc.RpcError:
        pass
    wait_for(lambda: any("ServerTransport" in r["message"] for r in records))
    channel.close()
    server.stop(None).wait(10)
elif case == "quiet":
    channel = grpc.insecure_channel("127.0.0.1:1")
    try:
        grpc.channel_ready_future(channel).result(timeout=1)
    except grpc.FutureTimeoutError:
        pass
    time.sleep(0.3)
    channel.close()
    records.append({"name": "threads", "level": "", "message":
                    ",".join(t.name for t in threading.enumerate()), "path": "", "line": 0,
                    "thread": ""})
print(json.dumps(records))
"""

# grpc-go's own switches for its stderr logger: set in every child, so that
# a grpc-go logging on its default logger would write there.
GO_LOUD = {"GRPC_GO_LOG_SEVERITY_LEVEL": "info", "GRPC_GO_LOG_VERBOSITY_LEVEL": "99"}


def run(case, env, *args, go_loud=True):
    full = dict(os.environ)
    for name in ("GRPC_VERBOSITY", "GRPC_TRACE", *GO_LOUD):
        full.pop(name, None)
    if go_loud:
        full.update(GO_LOUD)
    full.update(env)
    proc = subprocess.run([sys.executable, "-c", CHILD, case, *args], env=full,
                          capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), proc.stderr


def go_records(records):
    return [r for r in records if r["name"] == "grpc.go" or r["name"].startswith("grpc.go.")]


def test_failed_dial_is_logged_through_python_logging_not_stderr():
    records, stderr = run("dial", {"GRPC_VERBOSITY": "INFO"})
    assert stderr == ""
    failed = [r for r in records if "failed to connect" in r["message"]]
    assert failed, records
    record = failed[0]
    assert record["name"] == "grpc.go.core"
    assert record["level"] == "WARNING"
    assert "127.0.0.1:1" in record["message"]
    # grpc-go's own file and line, not Python's
    assert record["path"].endswith(".go") and record["line"] > 0
    # delivered by the engine's log thread, never by a Go thread
    assert record["thread"] == "grpcgo-events"
    # INFO records come too at INFO verbosity
    assert any(r["level"] == "INFO" and r["name"] == "grpc.go.core" for r in records)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return certs.make_pki(tmp_path_factory.mktemp("pki"))


def test_bad_tls_handshake_is_logged(pki):
    records, stderr = run("tls", {"GRPC_VERBOSITY": "INFO"},
                          pki.server.key_path, pki.server.cert_path)
    assert stderr == ""
    handshake = [r for r in go_records(records) if "failed to create ServerTransport" in r["message"]]
    assert handshake, records


def test_default_verbosity_is_error():
    records, stderr = run("dial", {}, go_loud=False)
    assert stderr == ""
    assert [r for r in go_records(records) if r["level"] in ("INFO", "WARNING")] == []


def test_verbosity_none_logs_nothing_and_starts_no_thread():
    records, stderr = run("quiet", {"GRPC_VERBOSITY": "NONE", "GRPC_TRACE": "all"})
    assert stderr == ""
    assert go_records(records) == []
    threads = [r for r in records if r["name"] == "threads"][0]["message"].split(",")
    assert "grpcgo-events" not in threads


def test_trace_enables_info_for_its_components_only():
    # channel tracing maps to grpc-go's core component: its INFO records
    # come while GRPC_VERBOSITY stays at ERROR
    records, stderr = run("dial", {"GRPC_VERBOSITY": "ERROR", "GRPC_TRACE": "channel,subchannel"})
    assert stderr == ""
    info = [r for r in go_records(records) if r["level"] in ("INFO", "WARNING")]
    assert info
    # the first says which tracers are on, as grpcio's does
    assert info[0]["name"] == "grpc.go" and info[0]["message"] == "gRPC Tracers: channel, subchannel"
    assert {r["name"] for r in info[1:]} <= {"grpc.go.core", "grpc.go.channelz"}


def test_settings_from_environment():
    from grpc import _logging

    assert _logging.settings({}) == (2, -1, [])
    assert _logging.settings({"GRPC_VERBOSITY": "debug"}) == (0, 99, [])
    assert _logging.settings({"GRPC_VERBOSITY": "INFO"}) == (0, 0, [])
    assert _logging.settings({"GRPC_VERBOSITY": "NONE", "GRPC_TRACE": "all"}) == (4, -1, [])
    assert _logging.settings({"GRPC_TRACE": "all"})[2] == ["*"]
    assert _logging.settings({"GRPC_TRACE": "http, round_robin"})[2] == [
        "balancer", "grpctransport", "roundrobin", "transport"]
    assert _logging.settings({"GRPC_TRACE": "http,-http,xds"})[2] == ["xds"]
    # grpc-go's own switches when GRPC_VERBOSITY is unset
    assert _logging.settings({"GRPC_GO_LOG_SEVERITY_LEVEL": "warning"}) == (1, -1, [])
    assert _logging.settings({"GRPC_GO_LOG_SEVERITY_LEVEL": "info",
                              "GRPC_GO_LOG_VERBOSITY_LEVEL": "2"}) == (0, 2, [])


UNCONFIGURED = r"""
import logging, sys
if sys.argv[1] == "configured":
    logging.basicConfig()
import grpc
channel = grpc.insecure_channel("localhost:1234")
print("Channel created")
channel.close()
"""

ABSL_LINE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d{6} +\d+ [^ ]+:\d+\] ")


def run_plain(how, env):
    full = {k: v for k, v in os.environ.items() if not k.startswith("GRPC_")}
    full.update(env)
    proc = subprocess.run([sys.executable, "-c", UNCONFIGURED, how], env=full,
                          capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "Channel created\n"
    return proc.stderr.splitlines()


def test_asked_for_traces_without_logging_configured_they_go_to_stderr():
    # grpcio's unit test (_absl_log_test): GRPC_TRACE=api in a program that
    # configures no logging writes the traces to stderr, first naming the
    # tracers. The api tracer's own lines are C-core's (grpc_init(...),
    # grpc_channel_create(...)); here the same events are grpc-go's.
    lines = run_plain("plain", {"GRPC_TRACE": "api"})
    assert lines, "nothing on stderr"
    assert all(ABSL_LINE.match(line) for line in lines), lines
    assert lines[0].endswith("] gRPC Tracers: api")
    assert any("Channel created for target" in line for line in lines), lines


def test_configured_logging_takes_the_traces_and_unasked_stays_quiet():
    lines = run_plain("configured", {"GRPC_TRACE": "api"})
    assert lines and not any(ABSL_LINE.match(line) for line in lines), lines
    assert "INFO:grpc.go:gRPC Tracers: api" in lines
    assert any(line.startswith("INFO:grpc.go.core:") for line in lines)
    assert run_plain("plain", {}) == []
    assert run_plain("plain", {"GRPC_VERBOSITY": "NONE", "GRPC_TRACE": "all"}) == []
