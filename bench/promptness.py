"""How promptly blocked calls end: the figures the tests only bound.

The tests check the order of events (Ctrl-C interrupts a blocked call and
cancels it; stop(grace) cancels what is still running after the grace; a
call without a server fails UNAVAILABLE, not at its deadline) with bounds
only a hang breaks. How long each takes is measured here, in the same way
under grpcgo and grpcio:

  ctrl_c_ms          SIGINT to KeyboardInterrupt in a child process whose
                     main thread is blocked in a unary call (wall clock,
                     median over --ctrl-c-n children)
  grace_over_ms      stop(grace=0.2) with a call held: time from stop() to
                     the client seeing UNAVAILABLE, minus the grace
  deadline_over_ms   a 0.2 s deadline on a call the server holds: time to
                     DEADLINE_EXCEEDED minus 0.2 s
  fail_fast_ms       a call to a port nobody listens on: time to UNAVAILABLE

Prints ``IMPL {...}`` first, then one ``RESULT {json}`` line.

    python bench/promptness.py [--expect ours|grpcio] [--n 10] [--ctrl-c-n 5]
"""

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from concurrent import futures

import grpc

import benchproto

HOLD = "/grpcgo.bench.Promptness/Hold"
GRACE = 0.2
DEADLINE = 0.2
CHILD_TIMEOUT = 30

CHILD = r"""
import sys, threading, time
from concurrent import futures
import grpc

started = threading.Event()

def hold(request, context):
    started.set()
    while context.is_active():
        time.sleep(0.005)
    return request

server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), handlers=[
    grpc.method_handlers_generic_handler("grpcgo.bench.Promptness", {
        "Hold": grpc.unary_unary_rpc_method_handler(hold)})])
port = server.add_insecure_port("127.0.0.1:0")
server.start()
channel = grpc.insecure_channel("127.0.0.1:%d" % port)

def announce():
    started.wait(20)
    print("ready", flush=True)

threading.Thread(target=announce, daemon=True).start()
try:
    channel.unary_unary("HOLD")(b"x", timeout=60)
    print("not interrupted", flush=True)
except KeyboardInterrupt:
    print("caught %.6f" % time.time(), flush=True)
channel.close()
server.stop(None)
""".replace("HOLD", HOLD)


_started = threading.Event()


def _hold(request, context):
    _started.set()
    while context.is_active():
        time.sleep(0.005)
    return request


def ctrl_c_once():
    proc = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = proc.stdout.readline().strip()
        if line != b"ready":
            raise SystemExit("ctrl-c child: %r %r" % (line, proc.stderr.read()))
        time.sleep(0.2)  # let the main thread settle into its wait
        sent = time.time()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=CHILD_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    first = out.decode().split("\n")[0]
    if not first.startswith("caught "):
        raise SystemExit("ctrl-c child: %r %r" % (out, err))
    return (float(first.split()[1]) - sent) * 1e3


def grace_once(port_server):
    server, port, pool = port_server()
    try:
        with grpc.insecure_channel("127.0.0.1:%d" % port) as channel:
            _started.clear()
            future = channel.unary_unary(HOLD).future(b"x", timeout=60)
            if not _started.wait(CHILD_TIMEOUT):
                raise SystemExit("stop(grace): the held call never started")
            t0 = time.monotonic()
            server.stop(GRACE)
            error = future.exception(timeout=CHILD_TIMEOUT)
            t1 = time.monotonic()
            if error is None or error.code() is not grpc.StatusCode.UNAVAILABLE:
                raise SystemExit("stop(grace): %r" % (error,))
            return (t1 - t0 - GRACE) * 1e3
    finally:
        server.stop(None)
        pool.shutdown(wait=False)


def deadline_once(channel):
    t0 = time.monotonic()
    try:
        channel.unary_unary(HOLD)(b"x", timeout=DEADLINE)
    except grpc.RpcError as error:
        if error.code() is not grpc.StatusCode.DEADLINE_EXCEEDED:
            raise
    else:
        raise SystemExit("the held call succeeded")
    return (time.monotonic() - t0 - DEADLINE) * 1e3


def fail_fast_once():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with grpc.insecure_channel("127.0.0.1:%d" % port) as channel:
        t0 = time.monotonic()
        try:
            channel.unary_unary(HOLD)(b"x", timeout=30)
        except grpc.RpcError as error:
            if error.code() is not grpc.StatusCode.UNAVAILABLE:
                raise
        return (time.monotonic() - t0) * 1e3


def new_server():
    pool = futures.ThreadPoolExecutor(max_workers=4)
    server = grpc.server(pool, handlers=[grpc.method_handlers_generic_handler(
        "grpcgo.bench.Promptness", {"Hold": grpc.unary_unary_rpc_method_handler(_hold)})])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port, pool


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--expect", choices=("ours", "grpcio"), default=None)
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--ctrl-c-n", type=int, default=5)
    args = parser.parse_args()
    benchproto.announce_impl(grpc, args.expect)
    result = {"workload": "promptness"}
    result["ctrl_c_ms"] = statistics.median(ctrl_c_once() for _ in range(args.ctrl_c_n))
    result["grace_over_ms"] = statistics.median(grace_once(new_server) for _ in range(args.n))
    server, port, pool = new_server()
    try:
        with grpc.insecure_channel("127.0.0.1:%d" % port) as channel:
            channel.unary_unary(HOLD)  # connect first
            grpc.channel_ready_future(channel).result(timeout=CHILD_TIMEOUT)
            result["deadline_over_ms"] = statistics.median(
                deadline_once(channel) for _ in range(args.n))
    finally:
        server.stop(None)
        pool.shutdown(wait=False)
    result["fail_fast_ms"] = statistics.median(fail_fast_once() for _ in range(args.n))
    print("RESULT " + json.dumps(result), flush=True)
    os._exit(0)


if __name__ == "__main__":
    main()
