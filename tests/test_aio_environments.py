"""grpc.aio's client wherever it runs: uvloop, several event loops in several
threads at once (sharing a channel, too), a second asyncio.run(), TLS and
mutual TLS, call credentials and composites, and the stubs grpcio-tools
generates (examples/helloworld, examples/route_guide), unchanged."""

import asyncio
import importlib
import os
import sys
import threading

import pytest

import grpc
import grpc.aio

import certs
import echo_service as E
from echo_service import msg

BOUND = 60
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(coro):
    async def bounded():
        return await asyncio.wait_for(coro, BOUND)

    return asyncio.run(bounded())


async def four_shapes(channel, tag):
    s = E.EchoStub(channel)
    assert (await s.UnaryEcho(msg(tag))).value == tag
    assert [m.value async for m in s.ServerStream(msg("2:" + tag))] == [tag + "-0", tag + "-1"]
    assert (await s.ClientStream(iter([msg(tag), msg(tag)]))).value == tag + "," + tag
    assert [m.value async for m in s.BidiStream(iter([msg(tag)]))] == [tag]
    results = await asyncio.gather(*(s.UnaryEcho(msg(f"{tag}{i}")) for i in range(20)))
    assert [r.value for r in results] == [f"{tag}{i}" for i in range(20)]


@pytest.fixture(params=["py", "go"])
def target(request):
    port = request.getfixturevalue("py_echo_port" if request.param == "py" else "go_echo_port")
    return f"127.0.0.1:{port}"


def test_uvloop(target):
    import uvloop

    async def main():
        assert "uvloop" in type(asyncio.get_running_loop()).__module__
        async with grpc.aio.insecure_channel(target) as channel:
            await four_shapes(channel, "uv")
            call = E.EchoStub(channel).UnaryEcho(msg("sleep:20000"))
            task = asyncio.ensure_future(_await(call))
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert call.cancelled()

    loop = uvloop.new_event_loop()
    try:
        loop.run_until_complete(asyncio.wait_for(main(), BOUND))
    finally:
        loop.close()


async def _await(call):
    return await call


def test_loops_in_threads_with_own_and_shared_channels(py_echo_port):
    target = f"127.0.0.1:{py_echo_port}"
    shared = None
    errors = []

    def thread_main(n):
        async def main():
            async with grpc.aio.insecure_channel(target) as own:
                await four_shapes(own, f"own{n}")
            await four_shapes(shared, f"shared{n}")

        try:
            if n % 2:
                import uvloop

                loop = uvloop.new_event_loop()
                try:
                    loop.run_until_complete(asyncio.wait_for(main(), BOUND))
                finally:
                    loop.close()
            else:
                run(main())
        except BaseException as error:  # reported below
            errors.append(error)

    async def make():
        return grpc.aio.insecure_channel(target)

    shared = run(make())
    threads = [threading.Thread(target=thread_main, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(BOUND)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors

    async def close():
        await shared.close()

    run(close())


def test_a_second_asyncio_run(py_echo_port):
    target = f"127.0.0.1:{py_echo_port}"

    async def main(tag):
        async with grpc.aio.insecure_channel(target) as channel:
            await four_shapes(channel, tag)

    run(main("first"))
    run(main("second"))


def test_sync_and_aio_clients_on_one_server(py_echo_port):
    target = f"127.0.0.1:{py_echo_port}"
    with grpc.insecure_channel(target) as sync_channel:
        sync = E.EchoStub(sync_channel)

        async def main():
            async with grpc.aio.insecure_channel(target) as channel:
                s = E.EchoStub(channel)
                # A sync call from another thread while the loop runs aio calls.
                sync_result = await asyncio.get_running_loop().run_in_executor(
                    None, lambda: sync.UnaryEcho(msg("sync")).value)
                assert sync_result == "sync"
                assert (await s.UnaryEcho(msg("aio"))).value == "aio"

        run(main())
        assert sync.UnaryEcho(msg("after")).value == "after"


# -- security -------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return certs.make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def secure_ports(pki):
    tls = grpc.ssl_server_credentials([(pki.server.key, pki.server.cert)])
    mtls = grpc.ssl_server_credentials([(pki.server.key, pki.server.cert)], pki.ca.cert, True)
    with certs.serving(("localhost:0", tls), ("localhost:0", mtls)) as (recorder, ports):
        yield recorder, ports


class Plugin(grpc.AuthMetadataPlugin):
    def __call__(self, context, callback):
        callback((("x-plugin", "p1"),), None)


def test_tls_mtls_and_call_credentials(pki, secure_ports):
    recorder, (tls_port, mtls_port) = secure_ports

    async def unary(channel, **kwargs):
        return await channel.unary_unary(certs.UNARY)(b"ping", timeout=certs.CALL_TIMEOUT, **kwargs)

    async def main():
        trust = grpc.ssl_channel_credentials(pki.ca.cert)
        async with grpc.aio.secure_channel(f"localhost:{tls_port}", trust) as channel:
            assert await unary(channel) == b"ping"
            stream = channel.stream_stream(certs.STREAM)(iter([b"a", b"b"]))
            assert [m async for m in stream] == [b"a", b"b"]

        # A client certificate is required on the mTLS port.
        async with grpc.aio.secure_channel(f"localhost:{mtls_port}", trust) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await unary(channel)
            assert info.value.code() is grpc.StatusCode.UNAVAILABLE
        mutual = grpc.ssl_channel_credentials(pki.ca.cert, pki.client.key, pki.client.cert)
        async with grpc.aio.secure_channel(f"localhost:{mtls_port}", mutual) as channel:
            assert await unary(channel) == b"ping"
            assert recorder.last.peer_identities

        # Call credentials: per call, and composed into the channel's.
        async with grpc.aio.secure_channel(f"localhost:{tls_port}", trust) as channel:
            token = grpc.access_token_call_credentials("tok")
            assert await unary(channel, credentials=token) == b"ping"
            assert recorder.values("authorization") == ["Bearer tok"]
            plugin = grpc.metadata_call_credentials(Plugin())
            assert await unary(channel, credentials=plugin) == b"ping"
            assert recorder.values("x-plugin") == ["p1"]
        composite = grpc.composite_channel_credentials(
            trust, grpc.metadata_call_credentials(Plugin()))
        async with grpc.aio.secure_channel(f"localhost:{tls_port}", composite) as channel:
            assert await unary(channel) == b"ping"
            assert recorder.values("x-plugin") == ["p1"]

        with pytest.raises(ValueError):
            grpc.aio.secure_channel("localhost:1", grpc.experimental.insecure_channel_credentials())

    run(main())


# -- generated stubs --------------------------------------------------------------


def _import_example(name, modules):
    path = os.path.join(ROOT, "examples", name)
    sys.path.insert(0, path)
    try:
        return {m: importlib.import_module(m) for m in modules}
    finally:
        sys.path.remove(path)
        for m in modules:
            sys.modules.pop(m, None)


def test_generated_stubs_work_with_aio_channels():
    from concurrent import futures

    hw = _import_example("helloworld", ("helloworld_pb2", "helloworld_pb2_grpc", "greeter_server"))
    rg = _import_example("route_guide", ("route_guide_pb2", "route_guide_pb2_grpc",
                                         "route_guide_resources", "route_guide_server",
                                         "route_guide_client"))
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    hw["helloworld_pb2_grpc"].add_GreeterServicer_to_server(hw["greeter_server"].Greeter(), server)
    rg["route_guide_pb2_grpc"].add_RouteGuideServicer_to_server(
        rg["route_guide_server"].RouteGuideServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    pb = rg["route_guide_pb2"]

    async def main():
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            greeter = hw["helloworld_pb2_grpc"].GreeterStub(channel)
            reply = await greeter.SayHello(hw["helloworld_pb2"].HelloRequest(name="aio"))
            assert reply.message == "Hello, aio!"

            guide = rg["route_guide_pb2_grpc"].RouteGuideStub(channel)
            features = rg["route_guide_resources"].read_route_guide_database()
            assert await guide.GetFeature(features[0].location) == features[0]
            rect = pb.Rectangle(lo=pb.Point(latitude=400000000, longitude=-750000000),
                                hi=pb.Point(latitude=401500000, longitude=-730000000))
            listed = [f async for f in guide.ListFeatures(rect)]
            assert len(listed) >= 4
            route = [f.location for f in features[:5]]
            summary = await guide.RecordRoute(iter(route))
            assert summary.point_count == 5
            note = rg["route_guide_client"].make_route_note
            notes = [note("First", 0, 0), note("Second", 0, 1), note("Third", 0, 0)]
            replies = [r.message async for r in guide.RouteChat(iter(notes))]
            assert replies == ["First"]

    try:
        run(main())
    finally:
        server.stop(None).wait(10)


# -- exit and Ctrl-C with live aio calls ---------------------------------------------

EXIT_PRELUDE = """
import asyncio, os, signal, sys
import grpc, grpc.aio
import echo_service as E
from echo_service import msg
target = sys.argv[1]
"""


def _child(body, target, send_sigint=False):
    import subprocess
    import textwrap
    import time

    code = EXIT_PRELUDE + textwrap.dedent(body)
    proc = subprocess.Popen([sys.executable, "-c", code, target], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                            cwd=os.path.dirname(os.path.abspath(__file__)))
    if send_sigint:
        deadline = time.monotonic() + BOUND
        line = proc.stdout.readline()  # "waiting": the call is under way
        assert line.strip() == "waiting", (line, proc.stderr.read() if proc.poll() is not None else "")
        proc.send_signal(__import__("signal").SIGINT)
    try:
        out, err = proc.communicate(timeout=BOUND)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"the child hung\nstdout:\n{out}\nstderr:\n{err}")
    return proc.returncode, out, err


def test_exit_with_live_aio_calls(py_echo_port):
    code, out, err = _child("""
        async def main():
            channel = grpc.aio.insecure_channel(target)
            s = E.EchoStub(channel)
            pending = s.UnaryEcho(msg("sleep:20000"))
            stream = s.BidiStream()
            reader = asyncio.ensure_future(stream.read())
            server_stream = s.ServerStream(msg("sleep:20000"))
            server_stream.add_done_callback(lambda call: None)
            await asyncio.sleep(0.2)
            print("leaving", flush=True)

        asyncio.run(main())
    """, f"127.0.0.1:{py_echo_port}")
    assert code == 0, err
    assert out.splitlines()[-1:] == ["leaving"], (out, err)
    assert "Traceback" not in err and "Fatal Python error" not in err, err


def test_ctrl_c_while_awaiting_an_aio_call(py_echo_port):
    code, out, err = _child("""
        async def main():
            async with grpc.aio.insecure_channel(target) as channel:
                call = E.EchoStub(channel).UnaryEcho(msg("sleep:20000"))
                await channel.channel_ready()
                print("waiting", flush=True)
                await call

        try:
            asyncio.run(main())
        except KeyboardInterrupt:
            print("interrupted", flush=True)
    """, f"127.0.0.1:{py_echo_port}", send_sigint=True)
    assert code == 0, err
    assert out.splitlines()[-1:] == ["interrupted"], (out, err)
    assert "Fatal Python error" not in err, err
