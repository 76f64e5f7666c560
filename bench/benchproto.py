"""Payloads shared by bench/server.py and bench/client.py (stdlib only, so
the same file runs under grpcgo's venv and grpcio's).

Every payload is a serialized ``grpcgo.bench.Blob`` (bench/bench.proto):
0x0a, a varint length, then the bytes. The handlers never parse protobuf;
this only keeps the bytes valid for ghz.
"""

import glob
import json
import os

SERVICE = "grpcgo.bench.Bench"
UNARY = "/%s/Unary" % SERVICE
SERVER_STREAM = "/%s/ServerStream" % SERVICE
CLIENT_STREAM = "/%s/ClientStream" % SERVICE
BIDI = "/%s/Bidi" % SERVICE

MIB = 1 << 20


def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def wrap(data):
    """Blob{data} serialized."""
    return b"\x0a" + _varint(len(data)) + data


def blob(size):
    """A serialized Blob of exactly ``size`` bytes (size >= 2)."""
    if size < 2:
        raise ValueError("a Blob needs at least 2 bytes")
    for n in range(size - 2, max(size - 12, -1), -1):
        if 1 + len(_varint(n)) + n == size:
            return wrap(b"x" * n)
    # No minimal varint fits (e.g. 130): pad the length varint with one
    # redundant continuation byte, which protobuf parsers accept.
    n = next(n for n in range(size - 3, -1, -1) if 2 + len(_varint(n)) + n == size)
    length = bytearray(_varint(n))
    length[-1] |= 0x80
    length.append(0)
    return b"\x0a" + bytes(length) + b"x" * n


def unwrap(message):
    """The data of a serialized Blob (b"" for an empty message)."""
    if not message:
        return b""
    if message[0] != 0x0A:
        raise ValueError("not a Blob")
    n, shift, i = 0, 0, 1
    while True:
        b = message[i]
        n |= (b & 0x7F) << shift
        i += 1
        if not b & 0x80:
            break
        shift += 7
    return bytes(message[i:i + n])


def max_message_options(limit):
    """Channel/server options raising both message length limits to ``limit``
    (None: no options, grpc's defaults)."""
    if limit is None:
        return []
    return [
        ("grpc.max_send_message_length", limit),
        ("grpc.max_receive_message_length", limit),
    ]


def which_grpc(grpc):
    """What `import grpc` gave: {"impl": "ours"|"grpcio", ...}."""
    here = os.path.dirname(os.path.abspath(grpc.__file__))
    ours = bool(glob.glob(os.path.join(here, "_engine*.so")))
    return {
        "impl": "ours" if ours else "grpcio",
        "version": getattr(grpc, "__version__", "?"),
        "file": grpc.__file__,
    }


def announce_impl(grpc, expect):
    """Prints the IMPL line; exits with status 3 if ``expect`` does not match."""
    info = which_grpc(grpc)
    print("IMPL " + json.dumps(info), flush=True)
    if expect and info["impl"] != expect:
        print(
            "bench: expected %s but `import grpc` gave %s (%s)"
            % (expect, info["impl"], info["file"]),
            file=__import__("sys").stderr,
            flush=True,
        )
        raise SystemExit(3)
    return info


def proc_cpu_seconds(pid):
    """utime + stime of a process, from /proc/PID/stat, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def proc_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0
