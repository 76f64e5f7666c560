"""Large messages on the wire (docs/ARCHITECTURE.md, "Metadata order", the
list of grpcgo's changes to grpc-go; docs/BENCHMARKS.md, "The 1 MiB row"),
seen from a raw HTTP/2 peer (the `h2` package).

- A server stream whose client ended its side (END_STREAM) gets no stream
  WINDOW_UPDATE: grpc-go gave a stream's window back after every message
  of a quarter of the 4 MiB window, so a 1 MiB unary request made the
  server write a frame that opened a window nothing could use, and woke
  the client's reader for it in the middle of every call.
"""

import socket
import time

import grpc
import h2.config
import h2.connection
import h2.events
import pytest

from serving import generic_server

WAIT = 20  # seconds, for every exchange (only a hang reaches it)
SERVICE = "grpcgo.testing.Large"
MIB = 1 << 20


def _echo(request, context):
    return request


def _methods():
    return {"Echo": grpc.unary_unary_rpc_method_handler(_echo)}


def _raw_unary(port, request, path="/%s/Echo" % SERVICE):
    """One unary call from a raw HTTP/2 client that sends its request as
    fast as the windows allow and gives back every byte it receives.
    Returns (response message bytes, trailers, the stream ids of the
    WINDOW_UPDATEs received after the request's END_STREAM went out)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(
        client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, [(":method", "POST"), (":scheme", "http"), (":path", path),
                            (":authority", "127.0.0.1:%d" % port),
                            ("content-type", "application/grpc"), ("te", "trailers")])
    body = b"\0" + len(request).to_bytes(4, "big") + request
    sent, ended = 0, False
    data, trailers, updates = bytearray(), None, []
    deadline = time.monotonic() + WAIT
    try:
        while trailers is None and time.monotonic() < deadline:
            while sent < len(body):
                n = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size,
                        len(body) - sent)
                if n <= 0:
                    break
                conn.send_data(sid, body[sent:sent + n], end_stream=sent + n == len(body))
                sent += n
                ended = sent == len(body)
            sock.sendall(conn.data_to_send())
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            for event in conn.receive_data(chunk):
                if isinstance(event, h2.events.WindowUpdated):
                    if ended and event.stream_id == sid:
                        updates.append(event.stream_id)
                elif isinstance(event, h2.events.DataReceived) and event.stream_id == sid:
                    data += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, sid)
                elif isinstance(event, h2.events.TrailersReceived):
                    trailers = dict(event.headers)
                elif isinstance(event, h2.events.StreamReset):
                    raise AssertionError("stream reset: %r" % event)
            sock.sendall(conn.data_to_send())
    finally:
        sock.close()
    assert trailers is not None, "no trailers"
    assert data[:1] == b"\0" and int.from_bytes(data[1:5], "big") == len(data) - 5
    return bytes(data[5:]), trailers, updates


@pytest.mark.parametrize("size", [MIB, 3 * MIB + 7])
def test_no_stream_window_update_after_the_clients_end_stream(size):
    request = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    with generic_server(SERVICE, _methods()) as port:
        response, trailers, updates = _raw_unary(port, request)
    assert trailers.get("grpc-status") == "0", trailers
    assert response == request
    # grpc-go gives a stream's window back once a quarter of it (1 MiB of
    # 4 MiB) was read: the server wrote one here before the response.
    assert updates == []
