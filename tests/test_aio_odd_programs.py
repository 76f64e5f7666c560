"""grpc.aio under the odd programs users write, each compared with grpcio
1.85.1 running the same program (a differential sweep: Ctrl-C and exit with
calls in flight, loops left open or closed with work pending, bad input on
the aio surface). Each case here differed from grpcio before its fix;
where grpcio is the one that is wrong (a hang, a crash) the test pins our
behaviour and docs/ARCHITECTURE.md ("Where grpc.aio differs from grpcio's
on purpose") says so.

Programs that end the interpreter run in a child process, bounded."""

import subprocess
import sys
import textwrap

import pytest

BOUND = 60  # seconds: only a hang reaches it


def _child(source, *args):
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(source)] + list(args),
                          capture_output=True, text=True, timeout=BOUND,
                          stdin=subprocess.DEVNULL)
    return proc.returncode, proc.stdout, proc.stderr


_LEFT_PENDING = r'''
import asyncio, sys
import grpc
from grpc import aio

loop_kind, closed = sys.argv[1], sys.argv[2] == "closed"
if loop_kind == "uvloop":
    import uvloop
    uvloop.install()


async def slow(request, context):
    await asyncio.sleep(60)
    return b""


async def count(requests, context):
    return b"%d" % len([r async for r in requests])


async def forever():
    yield b"a"
    await asyncio.sleep(60)


class Passing(aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation, details, request):
        return await continuation(details, request)


kept = []


async def leave_things_running():
    server = aio.server()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("t", {
        "slow": grpc.unary_unary_rpc_method_handler(slow),
        "count": grpc.stream_unary_rpc_method_handler(count)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    target = "127.0.0.1:%d" % port
    channel = aio.insecure_channel(target)
    intercepted = aio.insecure_channel(target, interceptors=[Passing()])
    kept.extend([server, channel, intercepted,
                 channel.unary_unary("/t/slow")(b""),
                 channel.stream_unary("/t/count")(forever()),
                 intercepted.unary_unary("/t/slow")(b"")])
    await asyncio.sleep(0.3)


loop = asyncio.new_event_loop()
loop.run_until_complete(leave_things_running())
if closed:
    loop.close()
print("leaving", flush=True)
'''


@pytest.mark.parametrize("closed", ["open", "closed"])
@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_a_loop_left_with_calls_in_flight_warns_of_no_pending_task_at_exit(loop_kind, closed):
    """A loop run with run_until_complete and then left (open, or closed)
    with a server serving, a handler waiting, a request iterator being
    consumed and an intercepted call in flight; the interpreter exits. The
    tasks grpc.aio made for them (the server's guard, the handler's, the
    request iterator's, the interceptors') were collected pending and each
    logged "Task was destroyed but it is pending!", which grpcio 1.85.1
    does not."""
    code, out, err = _child(_LEFT_PENDING, loop_kind, closed)
    assert code == 0, err
    assert out.split() == ["leaving"], (out, err)
    assert "Task was destroyed but it is pending" not in err, err
    assert "Traceback" not in err, err
