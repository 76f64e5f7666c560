"""`make soak`: a long run that only a leak or a hang would spoil.

A server process and a client process, both on the grpc this Python imports.
The client makes --calls unary calls (1,000,000 by default) from --threads
threads (8), while one more thread churns streams (a bidi call of 10
messages, then the next) and another churns channels (a channel, one call,
close). The parent samples both processes' resident memory and thread
count at the start (after a warm-up), after 100,000 calls and at the end,
and prints them with the rates; --json writes them too.

    python bench/soak.py [--calls N] [--threads N] [--json PATH]
"""

import argparse
import json
import os
import subprocess
import sys
import time

SERVER = r"""
import concurrent.futures, grpc, sys
def echo(request, context):
    return request
def bidi(requests, context):
    for r in requests:
        yield r
h = grpc.method_handlers_generic_handler("soak.S", {
    "Echo": grpc.unary_unary_rpc_method_handler(echo),
    "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
})
server = grpc.server(concurrent.futures.ThreadPoolExecutor(16), handlers=[h])
print(server.add_insecure_port("127.0.0.1:0"), flush=True)
server.start()
sys.stdin.read()
server.stop(None).wait(10)
"""

CLIENT = r"""
import grpc, sys, threading, time
port, total, nthreads = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
target = "127.0.0.1:%d" % port
channel = grpc.insecure_channel(target)
echo = channel.unary_unary("/soak.S/Echo")
bidi = channel.stream_stream("/soak.S/Bidi")
for _ in range(2000):
    echo(b"warm", timeout=30)
print("warm", flush=True)
sys.stdin.readline()  # the parent sampled the start
lock = threading.Lock()
done = [0, 0, 0, 0]  # unary calls, streams, channels, errors
stop = threading.Event()
MARK = 100_000
marked = [False]
payload = b"x" * 100

def unary():
    while True:
        with lock:
            if done[0] >= total:
                return
            done[0] += 1
            n = done[0]
        try:
            echo(payload, timeout=30)
        except grpc.RpcError:
            with lock:
                done[3] += 1
        if n == MARK:
            print("mark", n, flush=True)

def streams():
    while not stop.is_set():
        try:
            out = list(bidi(iter([payload] * 10), timeout=30))
            assert len(out) == 10
        except grpc.RpcError:
            with lock:
                done[3] += 1
        done[1] += 1

def channels():
    while not stop.is_set():
        try:
            with grpc.insecure_channel(target) as ch:
                ch.unary_unary("/soak.S/Echo")(payload, timeout=30)
        except grpc.RpcError:
            with lock:
                done[3] += 1
        done[2] += 1

start = time.monotonic()
workers = [threading.Thread(target=unary) for _ in range(nthreads)]
churn = [threading.Thread(target=streams), threading.Thread(target=channels)]
for t in workers + churn:
    t.start()
for t in workers:
    t.join()
elapsed = time.monotonic() - start
print("done %d %d %d %d %.2f" % (done[0], done[1], done[2], done[3], elapsed), flush=True)
sys.stdin.readline()  # the parent sampled the end
stop.set()
for t in churn:
    t.join()
"""


def sample(pid):
    fields = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return {"rss_mib": int(fields["VmRSS"].split()[0]) / 1024, "threads": int(fields["Threads"])}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--json")
    args = parser.parse_args()
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    port = int(server.stdout.readline())
    client = subprocess.Popen([sys.executable, "-c", CLIENT, str(port), str(args.calls),
                               str(args.threads)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    samples = {}

    def take(name):
        samples[name] = {"client": sample(client.pid), "server": sample(server.pid),
                         "time": time.monotonic()}

    try:
        assert client.stdout.readline().strip() == "warm"
        take("start")
        client.stdin.write("go\n")
        client.stdin.flush()
        result = None
        for line in client.stdout:
            words = line.split()
            if words[0] == "mark":
                take("100k")
            elif words[0] == "done":
                take("end")
                result = dict(zip(("unary", "streams", "channels", "errors"), map(int, words[1:5])))
                result["seconds"] = float(words[5])
                client.stdin.write("end\n")
                client.stdin.flush()
                break
        client.wait(60)
    finally:
        server.stdin.close()
        server.wait(30)
        if client.poll() is None:
            client.kill()
    import grpc
    print("grpc:", grpc.__file__)
    print("calls %(unary)d unary, %(streams)d streams, %(channels)d channels, "
          "%(errors)d errors in %(seconds).1f s" % result)
    print("unary calls/s: %.0f" % (result["unary"] / result["seconds"]))
    print("%-6s %12s %15s %12s %15s" % ("", "client MiB", "client threads", "server MiB",
                                        "server threads"))
    for name in ("start", "100k", "end"):
        if name in samples:
            c, s = samples[name]["client"], samples[name]["server"]
            print("%-6s %12.1f %15d %12.1f %15d" % (name, c["rss_mib"], c["threads"],
                                                     s["rss_mib"], s["threads"]))
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"result": result, "samples": samples, "grpc": grpc.__file__}, f, indent=1)
    return 0 if result and result["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
