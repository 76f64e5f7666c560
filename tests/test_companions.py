"""The gRPC project's companion packages, unmodified, on top of our grpc.

grpcio-health-checking, grpcio-reflection, grpcio-status and grpcio-testing
from PyPI, installed with plain pip (interop/requirements-companions.txt;
`make companions`, which `make test` runs first): our distribution is the
`grpcio` they require. If they are missing, the `companions` fixture installs
them the same way, then checks that `import grpc` is still grpcgo and that
the `grpcio` distribution installed is ours.

grpcurl (built from the Go module proxy into build/interop/) lists and calls
our server through reflection.
"""

import glob
import importlib
import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
import threading
from concurrent import futures

import pytest

import grpc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REQUIREMENTS = os.path.join(ROOT, "interop", "requirements-companions.txt")
ROUTE_GUIDE = os.path.join(ROOT, "examples", "route_guide")
sys.path.insert(0, os.path.join(ROOT, "interop"))

import peers  # noqa: E402

TIMEOUT = 10
PIP_TIMEOUT = 600
COMPANION_MODULES = ("grpc_health", "grpc_reflection", "grpc_status", "grpc_testing",
                     "google.rpc.status_pb2")


def _missing():
    missing = []
    for name in COMPANION_MODULES:
        try:
            if importlib.util.find_spec(name) is None:
                missing.append(name)
        except ModuleNotFoundError:
            missing.append(name)
    return missing


def _assert_grpc_is_ours():
    if os.environ.get("GRPCGO_TEST_ALLOW_GRPCIO") == "1":
        return  # running the suite on another grpc on purpose (see conftest.py)
    here = os.path.dirname(os.path.abspath(grpc.__file__))
    assert glob.glob(os.path.join(here, "_engine*.so")), (
        f"`import grpc` is {grpc.__file__}, not grpcgo")
    # A fresh interpreter too: the files on disk, not this process's modules.
    out = subprocess.run(
        [sys.executable, "-c", "import grpc, os; print(os.path.dirname(grpc.__file__))"],
        capture_output=True, text=True, timeout=60, cwd="/", stdin=subprocess.DEVNULL)
    fresh = out.stdout.strip()
    assert fresh and glob.glob(os.path.join(fresh, "_engine*.so")), (
        f"a fresh `import grpc` gives {fresh!r}, not grpcgo: {out.stderr}")
    dist = importlib.metadata.distribution("grpcio")
    assert "+grpcgo" in dist.version, f"grpcio {dist.version} is not grpcgo's"


@pytest.fixture(scope="module")
def companions():
    """Installs the companion packages if missing; checks grpc is ours."""
    missing = _missing()
    if missing:
        cmd = [sys.executable, "-m", "pip", "install", "--quiet",
               "--disable-pip-version-check", "-r", REQUIREMENTS]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True,
                                  timeout=PIP_TIMEOUT, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            pytest.fail(f"`{' '.join(cmd)}` took over {PIP_TIMEOUT} s", pytrace=False)
        if proc.returncode != 0:
            pytest.fail(f"{missing} missing and `{' '.join(cmd)}` failed:\n"
                        f"{proc.stdout}{proc.stderr}", pytrace=False)
        importlib.invalidate_caches()
        assert not _missing(), f"still missing after pip: {_missing()}"
    _assert_grpc_is_ours()


@pytest.fixture(scope="module")
def rg():
    sys.path.insert(0, ROUTE_GUIDE)
    try:
        import route_guide_pb2
        import route_guide_pb2_grpc
        import route_guide_server
        yield type("RG", (), dict(pb2=route_guide_pb2, pb2_grpc=route_guide_pb2_grpc,
                                  server=route_guide_server))
    finally:
        sys.path.remove(ROUTE_GUIDE)


@pytest.fixture
def serve():
    """serve(add) -> port: a grpc.server set up by add(server); stopped after."""
    servers = []

    def start(add, max_workers=16):
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers))
        add(server)
        port = server.add_insecure_port("127.0.0.1:0")
        assert port > 0
        server.start()
        servers.append(server)
        return port

    yield start
    for server in servers:
        server.stop(None).wait(5)


def test_installed_beside_our_grpcio(companions):
    for dist in ("grpcio-health-checking", "grpcio-reflection", "grpcio-status",
                 "grpcio-testing", "googleapis-common-protos"):
        importlib.metadata.distribution(dist)
    _assert_grpc_is_ours()


# -- grpcio-health-checking ---------------------------------------------------------

@pytest.fixture
def health(companions, serve):
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    servicer = health.HealthServicer()
    port = serve(lambda server: health_pb2_grpc.add_HealthServicer_to_server(servicer, server))
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield servicer, health_pb2, health_pb2_grpc.HealthStub(channel)


def test_health_check(health):
    servicer, pb2, stub = health
    serving = pb2.HealthCheckResponse.SERVING
    assert stub.Check(pb2.HealthCheckRequest(), timeout=TIMEOUT).status == serving
    servicer.set("routeguide.RouteGuide", serving)
    response = stub.Check(pb2.HealthCheckRequest(service="routeguide.RouteGuide"),
                          timeout=TIMEOUT)
    assert response.status == serving
    servicer.set("routeguide.RouteGuide", pb2.HealthCheckResponse.NOT_SERVING)
    response = stub.Check(pb2.HealthCheckRequest(service="routeguide.RouteGuide"),
                          timeout=TIMEOUT)
    assert response.status == pb2.HealthCheckResponse.NOT_SERVING
    with pytest.raises(grpc.RpcError) as info:
        stub.Check(pb2.HealthCheckRequest(service="no.such.Service"), timeout=TIMEOUT)
    assert info.value.code() is grpc.StatusCode.NOT_FOUND


def test_health_watch_sees_status_changes(health):
    servicer, pb2, stub = health
    status = pb2.HealthCheckResponse
    servicer.set("svc", status.SERVING)
    watch = stub.Watch(pb2.HealthCheckRequest(service="svc"), timeout=TIMEOUT)
    unknown = stub.Watch(pb2.HealthCheckRequest(service="later"), timeout=TIMEOUT)
    try:
        assert next(watch).status == status.SERVING
        servicer.set("svc", status.NOT_SERVING)
        assert next(watch).status == status.NOT_SERVING
        servicer.set("svc", status.SERVING)
        assert next(watch).status == status.SERVING

        assert next(unknown).status == status.SERVICE_UNKNOWN
        servicer.set("later", status.SERVING)
        assert next(unknown).status == status.SERVING

        servicer.enter_graceful_shutdown()
        assert next(watch).status == status.NOT_SERVING
        assert next(unknown).status == status.NOT_SERVING
    finally:
        watch.cancel()
        unknown.cancel()
    assert watch.code() is grpc.StatusCode.CANCELLED


def test_health_cancelled_watches_free_their_server_threads(companions, serve):
    # HealthServicer.Watch blocks its server thread until the callback it
    # registers with context.add_callback runs; grpcio runs those callbacks
    # when the RPC ends (here: the client cancels), which frees the thread.
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    servicer = health.HealthServicer()
    port = serve(lambda server: health_pb2_grpc.add_HealthServicer_to_server(servicer, server),
                 max_workers=2)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for _ in range(3):  # more watches in turn than the server has threads
            watch = stub.Watch(health_pb2.HealthCheckRequest(), timeout=3)
            assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
            watch.cancel()
        response = stub.Check(health_pb2.HealthCheckRequest(), timeout=3)
        assert response.status == health_pb2.HealthCheckResponse.SERVING


# -- grpcio-reflection --------------------------------------------------------------

EXPECTED_SERVICES = ["grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection",
                     "routeguide.RouteGuide"]


@pytest.fixture
def reflection_port(companions, rg, serve):
    """Our server with route_guide, health and reflection on it."""
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection

    def add(server):
        rg.pb2_grpc.add_RouteGuideServicer_to_server(rg.server.RouteGuideServicer(), server)
        health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
        names = (rg.pb2.DESCRIPTOR.services_by_name["RouteGuide"].full_name,
                 health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                 reflection.SERVICE_NAME)
        reflection.enable_server_reflection(names, server)

    return serve(add)


def test_reflection_client_lists_services_and_fetches_files(reflection_port):
    from google.protobuf.descriptor_pool import DescriptorPool
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
        ProtoReflectionDescriptorDatabase)

    with grpc.insecure_channel(f"127.0.0.1:{reflection_port}") as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        assert sorted(database.get_services()) == EXPECTED_SERVICES
        file_proto = database.FindFileContainingSymbol("routeguide.RouteGuide")
        assert file_proto.name == "route_guide.proto"
        assert file_proto.package == "routeguide"
        assert [s.name for s in file_proto.service] == ["RouteGuide"]
        assert {m.name for m in file_proto.message_type} >= {
            "Point", "Rectangle", "Feature", "RouteNote", "RouteSummary"}
        by_name = database.FindFileByName("route_guide.proto")
        assert by_name == file_proto

        pool = DescriptorPool(database)
        service = pool.FindServiceByName("routeguide.RouteGuide")
        shapes = {m.name: (m.client_streaming, m.server_streaming) for m in service.methods}
        assert shapes == {"GetFeature": (False, False), "ListFeatures": (False, True),
                          "RecordRoute": (True, False), "RouteChat": (True, True)}
        health_check = pool.FindServiceByName("grpc.health.v1.Health").methods_by_name["Check"]
        assert health_check.input_type.full_name == "grpc.health.v1.HealthCheckRequest"


def test_reflection_raw_stream(reflection_port):
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{reflection_port}") as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        requests = [
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="no.such.Symbol"),
        ]
        listed, missing = list(stub.ServerReflectionInfo(iter(requests), timeout=TIMEOUT))
        assert sorted(s.name for s in listed.list_services_response.service) == \
            EXPECTED_SERVICES
        assert missing.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]


@pytest.fixture(scope="module")
def grpcurl():
    try:
        return peers.grpcurl()
    except peers.PeerError as error:
        pytest.fail(f"could not build grpcurl: {error}", pytrace=False)


def _grpcurl(binary, port, *rest, data=None):
    """Runs `grpcurl -plaintext [-d data] 127.0.0.1:port rest...`; returns stdout."""
    flags = ["-d", data] if data is not None else []
    cmd = [binary, "-plaintext", "-max-time", "10", *flags, f"127.0.0.1:{port}", *rest]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"{' '.join(cmd)}: {proc.stdout}{proc.stderr}"
    return proc.stdout


def test_grpcurl_lists_and_calls_through_reflection(grpcurl, reflection_port):
    listed = _grpcurl(grpcurl, reflection_port, "list").split()
    assert sorted(listed) == EXPECTED_SERVICES
    methods = _grpcurl(grpcurl, reflection_port, "list", "routeguide.RouteGuide").split()
    assert methods == [f"routeguide.RouteGuide.{m}" for m in
                       ("GetFeature", "ListFeatures", "RecordRoute", "RouteChat")]
    described = _grpcurl(grpcurl, reflection_port, "describe", "routeguide.Point")
    assert "int32 latitude = 1;" in described

    point = json.dumps({"latitude": 400000000, "longitude": -745000000})
    feature = json.loads(_grpcurl(grpcurl, reflection_port,
                                  "routeguide.RouteGuide/GetFeature", data=point))
    assert feature == {"name": "Old Mill", "location": json.loads(point)}

    rectangle = json.dumps({"lo": {"latitude": 400000000, "longitude": -750000000},
                            "hi": {"latitude": 400500000, "longitude": -740000000}})
    out = _grpcurl(grpcurl, reflection_port, "routeguide.RouteGuide/ListFeatures",
                   data=rectangle)
    names = [json.loads(chunk)["name"] for chunk in out.replace("}\n{", "}\x00{").split("\x00")]
    assert names == ["Old Mill", "Quarry Lake", "Beacon Hill", "Fox Meadow"]

    health = json.loads(_grpcurl(grpcurl, reflection_port, "grpc.health.v1.Health/Check",
                                 data="{}"))
    assert health == {"status": "SERVING"}


# -- grpcio-status --------------------------------------------------------------------

def test_status_round_trip_with_rich_details(companions, serve):
    from google.protobuf import any_pb2
    from google.rpc import code_pb2, error_details_pb2, status_pb2
    from grpc_status import rpc_status

    bad_request = error_details_pb2.BadRequest(field_violations=[
        error_details_pb2.BadRequest.FieldViolation(field="name", description="empty")])
    info = error_details_pb2.ErrorInfo(reason="NO_NAME", domain="grpcgo.test",
                                       metadata={"k": "v"})
    details = []
    for detail in (bad_request, info):
        packed = any_pb2.Any()
        packed.Pack(detail)
        details.append(packed)
    sent = status_pb2.Status(code=code_pb2.INVALID_ARGUMENT,
                             message="name must not be empty \u263a", details=details)

    def handler(request, context):
        if request == b"ok":
            return b"fine"
        context.abort_with_status(rpc_status.to_status(sent))

    def add(server):
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            "grpcgo.test.Status", {"Call": grpc.unary_unary_rpc_method_handler(handler)}),))

    port = serve(add)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary("/grpcgo.test.Status/Call")
        with pytest.raises(grpc.RpcError) as raised:
            call(b"fail", timeout=TIMEOUT)
        error = raised.value
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert error.details() == sent.message
        assert any(key == "grpc-status-details-bin" for key, _ in error.trailing_metadata())

        received = rpc_status.from_call(error)
        assert received == sent
        got_bad_request = error_details_pb2.BadRequest()
        assert received.details[0].Unpack(got_bad_request)
        assert got_bad_request == bad_request
        got_info = error_details_pb2.ErrorInfo()
        assert received.details[1].Unpack(got_info) and got_info == info

        response, ok_call = call.with_call(b"ok", timeout=TIMEOUT)
        assert response == b"fine"
        assert rpc_status.from_call(ok_call) is None

    status = rpc_status.to_status(sent)
    assert status.code is grpc.StatusCode.INVALID_ARGUMENT
    assert status.details == sent.message
    assert status.trailing_metadata == (("grpc-status-details-bin", sent.SerializeToString()),)


# -- grpcio-testing ---------------------------------------------------------------

def test_grpc_testing_server_and_channel(companions, rg):
    import grpc_testing

    service = rg.pb2.DESCRIPTOR.services_by_name["RouteGuide"]
    point = rg.pb2.Point(latitude=400000000, longitude=-745000000)

    # A servicer driven by grpc_testing's in-memory server.
    server = grpc_testing.server_from_dictionary(
        {service: rg.server.RouteGuideServicer()}, grpc_testing.strict_real_time())
    rpc = server.invoke_unary_unary(service.methods_by_name["GetFeature"], (), point, None)
    response, trailing_metadata, code, details = rpc.termination()
    assert code is grpc.StatusCode.OK and response.name == "Old Mill"

    rpc = server.invoke_unary_stream(
        service.methods_by_name["ListFeatures"], (),
        rg.pb2.Rectangle(lo=point, hi=rg.pb2.Point(latitude=400200000,
                                                   longitude=-744000000)), None)
    first = rpc.take_response()
    assert first.name == "Old Mill"
    _, code, _ = rpc.termination()
    assert code is grpc.StatusCode.OK

    # A generated stub on grpc_testing's in-memory channel.
    channel = grpc_testing.channel([service], grpc_testing.strict_real_time())
    stub = rg.pb2_grpc.RouteGuideStub(channel)
    result = {}
    caller = threading.Thread(target=lambda: result.update(
        feature=stub.GetFeature(point, timeout=TIMEOUT)))
    caller.start()
    metadata, request, rpc = channel.take_unary_unary(service.methods_by_name["GetFeature"])
    assert request == point
    rpc.terminate(rg.pb2.Feature(name="from the test", location=point), (),
                  grpc.StatusCode.OK, "")
    caller.join(TIMEOUT)
    assert result["feature"].name == "from the test"
