"""Runs the interop matrix and writes docs/INTEROP.md (`make interop`).

    python interop/run_matrix.py [--python=.venv/bin/python] [--out=docs/INTEROP.md]
        [--soak_iterations=10] [--case_timeout=90] [--directions=KEY,...]
        [--cases=NAME,...]

Every locally runnable interop case, in every direction between our `grpc`
(grpcgo, run by --python) and the peers the gRPC project publishes: grpc-go's
interop client and server (built from the module proxy) and grpcio (from
PyPI, in its own venv, running interop/server.py and interop/client.py), each
plaintext and with TLS (grpc-go's test CA). One column runs grpcio against
itself as a control: it shows that the scripts pass on grpcio.

Each server starts once per direction; each case is one client process,
killed after --case_timeout seconds. Logs go to build/interop/logs/.
Exit status 1 when any case failed, after the table is written.
"""

import argparse
import collections
import datetime
import os
import platform
import subprocess
import sys

import harness
import peers

ROOT = peers.ROOT
LOGS = os.path.join(peers.BUILD, "logs")

Direction = collections.namedtuple("Direction", "key client server tls")

# (client, server) pairs; "grpcgo" is this project's grpc package.
DIRECTIONS = [
    Direction(f"{client}>{server}{'+tls' if tls else ''}", client, server, tls)
    for client, server in (("grpc-go", "grpcgo"), ("grpcgo", "grpc-go"),
                           ("grpcio", "grpcgo"), ("grpcgo", "grpcio"),
                           ("grpcio", "grpcio"), ("grpcgo-aio", "grpc-go"),
                           ("grpcgo-aio", "grpcio"), ("grpcio-aio", "grpc-go"),
                           ("grpc-go", "grpcgo-aio"), ("grpcio", "grpcgo-aio"),
                           ("grpcgo-aio", "grpcgo-aio"), ("grpc-go", "grpcio-aio"))
    for tls in (False, True)
]
CONTROL = "grpcio"  # a direction with neither end ours is a control
# "-aio" clients run interop/aio_client.py (grpc.aio) instead of client.py,
# "-aio" servers interop/aio_server.py instead of server.py.

# Cases a peer program does not implement: (role, peer, case) -> why.
NOT_SUPPORTED = {
    ("client", "grpc-go", "client_compressed_unary"):
        "grpc-go's interop client does not implement it",
    ("client", "grpc-go", "server_compressed_unary"):
        "grpc-go's interop client does not implement it",
    ("server", "grpc-go", "client_compressed_unary"):
        "grpc-go's interop server registers no gzip decompressor: it answers "
        "UNIMPLEMENTED to any compressed request (grpcio's client gets the same)",
}

NOTES = [
    "client_compressed_unary: interop/server.py cannot honour `expect_compressed` "
    "(whether a request arrived compressed is not visible through grpcio's public "
    "API), so interop/client.py tolerates a server that accepts the spec's feature "
    "probe and then requires the gzip-compressed and the uncompressed call to "
    "succeed.",
    "server_compressed_unary: the client checks the responses only (the public API "
    "does not show whether a response was compressed); grpc-go's interop server "
    "ignores `response_compressed`.",
    "rpc_soak / channel_soak run a bounded number of iterations (below), "
    "271,828-byte requests and 314,159-byte responses, 1 s per-iteration "
    "latency limit, 30 s overall.",
]


def _peer_cmds(args):
    go_client, go_server = peers.go_interop()
    grpcio = peers.grpcio_python()

    def server(kind, port, tls):
        if kind == "grpc-go":
            return harness.go_server(go_server, port, tls)
        make = harness.python_server
        if kind.endswith("-aio"):
            kind, make = kind[:-len("-aio")], harness.python_aio_server
        python = args.python if kind == "grpcgo" else grpcio
        return make(python, port, tls)

    def client(kind, port, case, tls):
        if kind == "grpc-go":
            return harness.go_client(go_client, port, case, tls, args.soak_iterations)
        make = harness.python_client
        if kind.endswith("-aio"):
            kind, make = kind[:-len("-aio")], harness.python_aio_client
        python = args.python if kind == "grpcgo" else grpcio
        return make(python, port, case, tls, args.soak_iterations)

    return server, client, grpcio


def _skip_reason(direction, case):
    return (NOT_SUPPORTED.get(("client", direction.client, case))
            or NOT_SUPPORTED.get(("server", direction.server, case)))


def run(args, directions, cases, server_cmd, client_cmd):
    """Returns {(direction key, case): (result, detail)}."""
    results = {}
    for direction in directions:
        print(f"== {direction.key}", flush=True)
        port = harness.free_port()
        log_dir = os.path.join(LOGS, direction.key.replace(">", "_to_"))
        with harness.Server(server_cmd(direction.server, port, direction.tls), port,
                            os.path.join(log_dir, "server.log")) as server:
            for case in cases:
                reason = _skip_reason(direction, case)
                if reason:
                    results[direction.key, case] = ("skip", reason)
                elif server.failure:
                    results[direction.key, case] = ("fail", server.failure)
                elif not server.alive():
                    results[direction.key, case] = ("fail", "the server died earlier")
                else:
                    passed, detail = harness.run_client(
                        client_cmd(direction.client, port, case, direction.tls),
                        args.case_timeout, os.path.join(log_dir, f"{case}.log"))
                    results[direction.key, case] = ("pass" if passed else "fail", detail)
                result, detail = results[direction.key, case]
                print(f"   {case:30} {result:5} {detail if result != 'pass' else ''}",
                      flush=True)
    return results


def _output(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                              cwd=ROOT, stdin=subprocess.DEVNULL).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def versions(args, grpcio):
    ours = _output([args.python, "-c",
                    "import grpc, importlib.metadata as m; "
                    "print(m.version('grpcio'), grpc.__version__)"]).split()
    commit = _output(["git", "rev-parse", "--short", "HEAD"])
    if _output(["git", "status", "--porcelain", "--untracked-files=no"]):
        commit += " plus uncommitted changes"
    return [
        ("grpcgo", f"{ours[0] if ours else '?'} (grpc.__version__ "
                   f"{ours[1] if len(ours) > 1 else '?'}), commit {commit}"),
        ("grpc-go interop client and server", peers.GRPC_GO_VERSION),
        ("grpcio (PyPI)", _output([grpcio, "-c", "import grpc; print(grpc.__version__)"])),
        ("protobuf (grpcgo venv / grpcio venv)",
         " / ".join(_output([python, "-c", "import google.protobuf as p; print(p.__version__)"])
                    for python in (args.python, grpcio))),
        ("Go", _output(["go", "env", "GOVERSION"])),
        ("Python", platform.python_version()),
        ("OS", f"{platform.system()} {platform.release()} {platform.machine()}"),
    ]


def _title(direction):
    client, server = direction.client, direction.server
    if client.endswith("-aio"):
        client = client[:-len("-aio")] + " grpc.aio"
    if server.endswith("-aio"):
        server = server[:-len("-aio")] + " grpc.aio"
    return (f"{client} client &rarr; {server} server, "
            f"{'TLS' if direction.tls else 'plaintext'}")


def render(args, directions, cases, results, version_rows, started):
    counts = collections.Counter(result for result, _ in results.values())
    lines = [
        "# Interop results",
        "",
        "<!-- Written by `make interop` (interop/run_matrix.py); do not edit. -->",
        "",
        f"Run {started:%Y-%m-%d %H:%M} UTC. The gRPC interop cases between grpcgo "
        "and the programs the gRPC project publishes; every peer is the real "
        "program, on 127.0.0.1. Re-run with `make interop`.",
        "",
        "| component | version |",
        "|---|---|",
    ]
    lines += [f"| {name} | {value} |" for name, value in version_rows]
    lines += ["", "Directions (client &rarr; server):", ""]
    for number, direction in enumerate(directions, 1):
        control = " (control: grpcio at both ends)" if (
            direction.client == CONTROL and direction.server == CONTROL) else ""
        if direction.client == CONTROL + "-aio":
            control = " (control: the aio client script on grpcio)"
        if direction.server == CONTROL + "-aio":
            control = " (control: the aio server script on grpcio)"
        lines.append(f"{number}. {_title(direction)}{control}")
    lines += [
        "",
        f"Totals: {counts['pass']} pass, {counts['fail']} fail, {counts['skip']} skip "
        f"(skip: the peer program does not implement the case).",
        "",
        "| case | " + " | ".join(str(n) for n in range(1, len(directions) + 1)) + " |",
        "|---|" + "---|" * len(directions),
    ]
    failures, skips = [], collections.OrderedDict()
    for case in cases:
        cells = []
        for number, direction in enumerate(directions, 1):
            result, detail = results[direction.key, case]
            if result == "fail":
                failures.append((case, direction, detail))
                cells.append(f"**fail** [{len(failures)}]")
            elif result == "skip":
                skips.setdefault(detail, collections.OrderedDict()).setdefault(
                    case, []).append(str(number))
                cells.append("skip")
            else:
                cells.append("pass")
        lines.append(f"| {case} | " + " | ".join(cells) + " |")
    if failures:
        lines += ["", "## Failures", ""]
        for number, (case, direction, detail) in enumerate(failures, 1):
            detail = detail.replace("|", "\\|")
            lines.append(f"{number}. {case}, {_title(direction)}: {detail}")
    if skips:
        lines += ["", "## Skipped", ""]
        for reason, where in skips.items():
            places = "; ".join(f"{case} in {', '.join(numbers)}"
                               for case, numbers in where.items())
            lines.append(f"- {reason}: {places}.")
    lines += ["", "## Notes", ""]
    lines += [f"- {note}" for note in NOTES]
    lines += [
        f"- Soak iterations this run: {args.soak_iterations}; each case is killed "
        f"after {args.case_timeout} s.",
        "- TLS: servers use grpc-go's testdata/server1.pem and server1.key, clients "
        "trust testdata/ca.pem and override the server name to "
        f"{harness.TLS_SERVER_NAME}.",
        "- Logs of the last run: build/interop/logs/.",
        "",
    ]
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--python", default=os.path.join(ROOT, ".venv", "bin", "python"),
                        help="the python whose `grpc` is grpcgo")
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "INTEROP.md"))
    parser.add_argument("--soak_iterations", type=int, default=10)
    parser.add_argument("--case_timeout", type=int, default=90)
    parser.add_argument("--directions", default="",
                        help="comma-separated direction keys (default: all), e.g. "
                             + ",".join(d.key for d in DIRECTIONS[:2]))
    parser.add_argument("--cases", default="", help="comma-separated (default: all)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    directions = DIRECTIONS
    if args.directions:
        wanted = args.directions.split(",")
        directions = [d for d in DIRECTIONS if d.key in wanted]
        unknown = set(wanted) - {d.key for d in directions}
        if unknown:
            print(f"unknown directions: {sorted(unknown)}", file=sys.stderr)
            return 2
    cases = list(harness.ALL_CASES)
    if args.cases:
        cases = [c for c in args.cases.split(",") if c]
        unknown = set(cases) - set(harness.ALL_CASES)
        if unknown:
            print(f"unknown cases: {sorted(unknown)}", file=sys.stderr)
            return 2
    started = datetime.datetime.now(datetime.timezone.utc)
    try:
        server_cmd, client_cmd, grpcio = _peer_cmds(args)
    except peers.PeerError as error:
        print(f"interop: {error}", file=sys.stderr)
        return 1
    results = run(args, directions, cases, server_cmd, client_cmd)
    text = render(args, directions, cases, results, versions(args, grpcio), started)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    counts = collections.Counter(result for result, _ in results.values())
    print(f"interop: {counts['pass']} pass, {counts['fail']} fail, {counts['skip']} "
          f"skip; table in {os.path.relpath(args.out, ROOT)}")
    return 1 if counts["fail"] else 0


if __name__ == "__main__":
    sys.exit(main())
