"""A metadata peer on grpcio's public API, run by tests/test_metadata_order.py
with either `grpc`: grpcgo's (the project venv) or grpcio's (its own venv).

    python metadata_peer.py serve          # prints the port; stops at EOF on stdin
    python metadata_peer.py call PORT      # one call; prints what it saw as JSON
    python metadata_peer.py big PORT SIZE  # a call with SIZE bytes of metadata;
                                           # prints its status code's name

The server answers /order.Order/Echo with the request metadata it saw (in
order, user-agent included), sends INITIAL as initial metadata and TRAILING
as trailing metadata. The client sends SENT and prints the three.
"""

import json
import sys
from concurrent import futures

import grpc

SENT = (("x-z", "1"), ("x-a", "2"), ("x-m-bin", b"\x00\x033"), ("x-a", "4"), ("x-c", "5"),
        ("x-b", "6"))
INITIAL = (("x-z", "1"), ("x-a", "2"), ("x-m-bin", b"\xff3"), ("x-a", "4"), ("x-b", "5"))
TRAILING = (("x-z", "1"), ("x-b-bin", b"\x00"), ("x-a", "2"), ("x-c", "3"), ("x-a", "4"))
METHOD = "/order.Order/Echo"


def _plain(metadata):
    return [[k, v.hex() if isinstance(v, bytes) else v] for k, v in metadata]


def _echo(request, context):
    seen = _plain(context.invocation_metadata())
    context.send_initial_metadata(INITIAL)
    context.set_trailing_metadata(TRAILING)
    return json.dumps(seen).encode()


def serve():
    handler = grpc.method_handlers_generic_handler(
        "order.Order", {"Echo": grpc.unary_unary_rpc_method_handler(_echo)})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), handlers=(handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    sys.stdin.read()
    server.stop(None)


def call(port):
    with grpc.insecure_channel("127.0.0.1:%s" % port) as channel:
        response, call = channel.unary_unary(METHOD).with_call(b"", metadata=SENT, timeout=30)
        print(json.dumps({"server_saw": json.loads(response),
                          "initial": _plain(call.initial_metadata()),
                          "trailing": _plain(call.trailing_metadata())}))


def big(port, size):
    with grpc.insecure_channel("127.0.0.1:%s" % port) as channel:
        try:
            channel.unary_unary(METHOD)(b"", metadata=(("x-big", "v" * size),), timeout=30)
            print("OK")
        except grpc.RpcError as error:
            print(error.code().name)


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve()
    elif sys.argv[1:2] == ["big"] and len(sys.argv) == 4:
        big(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1:2] == ["call"] and len(sys.argv) == 3:
        call(sys.argv[2])
    else:
        sys.exit(__doc__)
