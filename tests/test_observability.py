"""grpc_observability.OpenTelemetryPlugin: grpcio's per-call metrics (gRFC
A66) recorded from the engine's stats into a user's MeterProvider, read
back with the OpenTelemetry SDK's in-memory reader."""

import time
from concurrent import futures

import pytest

import grpc

metrics_sdk = pytest.importorskip("opentelemetry.sdk.metrics")
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402

import grpc_observability  # noqa: E402

WAIT = 10  # seconds for records to reach the reader; only a hang reaches it
CALL_TIMEOUT = 10


def _echo(request, context):
    return request


def _fail(request, context):
    context.abort(grpc.StatusCode.FAILED_PRECONDITION, "no")


def _ticks(request, context):
    for _ in range(3):
        yield request


def _sum(requests, context):
    return b"".join(requests)


def _server():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_registered_method_handlers("obs.Svc", {
        "Echo": grpc.unary_unary_rpc_method_handler(_echo),
        "Fail": grpc.unary_unary_rpc_method_handler(_fail),
        "Ticks": grpc.unary_stream_rpc_method_handler(_ticks),
        "Sum": grpc.stream_unary_rpc_method_handler(_sum),
    })
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("obs.Generic", {
        "Echo": grpc.unary_unary_rpc_method_handler(_echo),
    })])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


def points(reader):
    """{(metric name, frozenset(attributes)): data point} of what was read."""
    out = {}
    data = reader.get_metrics_data()
    if data is None:
        return out
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    out[(metric.name, frozenset(point.attributes.items()))] = point
    return out


def wait_for(reader, predicate):
    deadline = time.monotonic() + WAIT
    seen = points(reader)
    while not predicate(seen) and time.monotonic() < deadline:
        time.sleep(0.05)
        seen.update(points(reader))
    return seen


def count(seen, name, **attributes):
    """The sum (counter) or count (histogram) of name's points whose
    attributes include the given ones."""
    want = {k.replace("_", "."): v for k, v in attributes.items()}
    total = 0
    for (metric, attrs), point in seen.items():
        if metric == name and want.items() <= dict(attrs).items():
            total += getattr(point, "value", None) or getattr(point, "count", 0)
    return total


def _points_of(seen, name, **attributes):
    want = {k.replace("_", "."): v for k, v in attributes.items()}
    return [p for (m, a), p in seen.items() if m == name and want.items() <= dict(a).items()]


def test_global_plugin_records_client_and_server_metrics():
    reader = InMemoryMetricReader()
    provider = metrics_sdk.MeterProvider(metric_readers=[reader])
    plugin = grpc_observability.OpenTelemetryPlugin(meter_provider=provider)
    plugin.register_global()
    try:
        server, port = _server()
        target = "127.0.0.1:%d" % port
        with grpc.insecure_channel(target) as channel:
            echo = channel.unary_unary("/obs.Svc/Echo", _registered_method=True)
            for _ in range(3):
                assert echo(b"x" * 100, timeout=CALL_TIMEOUT) == b"x" * 100
            with pytest.raises(grpc.RpcError):
                channel.unary_unary("/obs.Svc/Fail", _registered_method=True)(
                    b"", timeout=CALL_TIMEOUT)
            ticks = channel.unary_stream("/obs.Svc/Ticks", _registered_method=True)
            assert len(list(ticks(b"t", timeout=CALL_TIMEOUT))) == 3
            total = channel.stream_unary("/obs.Svc/Sum", _registered_method=True)
            assert total(iter([b"a", b"b"]), timeout=CALL_TIMEOUT) == b"ab"
            # not registered anywhere: recorded as "other"
            assert channel.unary_unary("/obs.Generic/Echo")(b"g", timeout=CALL_TIMEOUT) == b"g"
        server.stop(None).wait(10)

        canonical = "dns:///" + target
        echo_ok = dict(grpc_method="obs.Svc/Echo", grpc_target=canonical, grpc_status="OK")
        seen = wait_for(reader, lambda s: (
            count(s, "grpc.server.call.duration", grpc_method="obs.Svc/Echo") >= 3
            and count(s, "grpc.client.attempt.duration", **echo_ok) >= 3
            and count(s, "grpc.server.call.duration", grpc_method="other") >= 1
            and count(s, "grpc.client.attempt.duration", grpc_method="other") >= 1))

        assert count(seen, "grpc.client.attempt.started", grpc_method="obs.Svc/Echo",
                     grpc_target=canonical) == 3
        assert count(seen, "grpc.client.attempt.duration", **echo_ok) == 3
        # grpcio-observability 1.85 exports no whole-call duration
        assert not any(name == "grpc.client.call.duration" for name, _ in seen)
        [sent] = _points_of(seen, "grpc.client.attempt.sent_total_compressed_message_size",
                            **echo_ok)
        assert sent.count == 3 and sent.sum == 300
        [rcvd] = _points_of(seen, "grpc.client.attempt.rcvd_total_compressed_message_size",
                            **echo_ok)
        assert rcvd.sum == 300
        assert count(seen, "grpc.client.attempt.duration", grpc_method="obs.Svc/Fail",
                     grpc_status="FAILED_PRECONDITION") == 1

        assert count(seen, "grpc.server.call.started", grpc_method="obs.Svc/Echo") == 3
        assert count(seen, "grpc.server.call.duration", grpc_method="obs.Svc/Echo",
                     grpc_status="OK") == 3
        assert count(seen, "grpc.server.call.duration", grpc_method="obs.Svc/Fail",
                     grpc_status="FAILED_PRECONDITION") == 1
        [ssent] = _points_of(seen, "grpc.server.call.sent_total_compressed_message_size",
                             grpc_method="obs.Svc/Ticks")
        assert ssent.sum == 3
        [srcvd] = _points_of(seen, "grpc.server.call.rcvd_total_compressed_message_size",
                             grpc_method="obs.Svc/Sum")
        assert srcvd.sum == 2
        # durations are real durations
        [duration] = _points_of(seen, "grpc.client.attempt.duration", **echo_ok)
        assert duration.sum > 0
        names = {name for name, _ in seen}
        assert not any("obs.Generic" in str(attrs) for _, attrs in seen), names
    finally:
        plugin.deregister_global()


def _names_in_order(reader, prefix):
    data = reader.get_metrics_data()
    return [metric.name for resource in data.resource_metrics
            for scope in resource.scope_metrics for metric in scope.metrics
            if metric.name.startswith(prefix)]


def test_metrics_are_grpcio_observabilitys_in_its_order():
    # grpcio-observability 1.85 exports its base_metrics() (no
    # grpc.client.call.duration) and records the sizes before the duration
    # at each end; a reader lists metrics in the order first recorded, which
    # programs printing what was exported show.
    reader = InMemoryMetricReader()
    with grpc_observability.OpenTelemetryPlugin(
            meter_provider=metrics_sdk.MeterProvider(metric_readers=[reader])):
        server, port = _server()
        try:
            with grpc.insecure_channel("127.0.0.1:%d" % port) as channel:
                assert channel.unary_unary("/obs.Svc/Echo", _registered_method=True)(
                    b"x", timeout=CALL_TIMEOUT) == b"x"
            wait_for(reader, lambda s: count(s, "grpc.client.attempt.duration") >= 1
                     and count(s, "grpc.server.call.duration") >= 1)
        finally:
            server.stop(None).wait(10)
        client = _names_in_order(reader, "grpc.client.")
        server_side = _names_in_order(reader, "grpc.server.")
    assert client == [
        "grpc.client.attempt.started",
        "grpc.client.attempt.sent_total_compressed_message_size",
        "grpc.client.attempt.rcvd_total_compressed_message_size",
        "grpc.client.attempt.duration",
    ]
    assert server_side == [
        "grpc.server.call.started",
        "grpc.server.call.sent_total_compressed_message_size",
        "grpc.server.call.rcvd_total_compressed_message_size",
        "grpc.server.call.duration",
    ]


def test_filters_and_context_manager():
    reader = InMemoryMetricReader()
    provider = metrics_sdk.MeterProvider(metric_readers=[reader])
    plugin = grpc_observability.OpenTelemetryPlugin(
        meter_provider=provider,
        target_attribute_filter=lambda target: False,
        generic_method_attribute_filter=lambda method: True)
    with plugin as entered:
        assert entered is None  # as grpcio's __enter__
        server, port = _server()
        with grpc.insecure_channel("127.0.0.1:%d" % port) as channel:
            assert channel.unary_unary("/obs.Generic/Echo")(b"g", timeout=CALL_TIMEOUT) == b"g"
        server.stop(None).wait(10)
        seen = wait_for(reader, lambda s: count(
            s, "grpc.client.attempt.duration", grpc_method="obs.Generic/Echo") >= 1)
    assert count(seen, "grpc.client.attempt.duration", grpc_method="obs.Generic/Echo",
                 grpc_target="other") == 1


def test_channels_made_before_registration_record_nothing_and_errors():
    server, port = _server()
    channel = grpc.insecure_channel("127.0.0.1:%d" % port)
    reader = InMemoryMetricReader()
    plugin = grpc_observability.OpenTelemetryPlugin(
        meter_provider=metrics_sdk.MeterProvider(metric_readers=[reader]))
    plugin.register_global()
    try:
        with pytest.raises(RuntimeError):
            grpc_observability.OpenTelemetryPlugin().register_global()
        # as in grpcio, a channel or server takes the plugins registered
        # when it is made
        assert channel.unary_unary("/obs.Svc/Echo", _registered_method=True)(
            b"x", timeout=CALL_TIMEOUT) == b"x"
        time.sleep(0.2)
        assert count(points(reader), "grpc.client.attempt.started") == 0
    finally:
        plugin.deregister_global()
        channel.close()
        server.stop(None).wait(10)
    with pytest.raises(RuntimeError):
        plugin.deregister_global()


class _Labels(grpc_observability.OpenTelemetryLabelInjector):
    def __init__(self, labels):
        self.labels = labels

    def get_additional_labels(self, include_exchange_labels):
        assert include_exchange_labels is False
        return dict(self.labels)


class _MeshOption(grpc_observability.OpenTelemetryPluginOption):
    """Active on channels whose target names localhost, and on plain (not
    xDS) servers."""

    def is_active_on_client_channel(self, target):
        return "localhost" in target

    def is_active_on_server(self, xds):
        return not xds

    def get_label_injector(self):
        return _Labels({"mesh.side": "local"})


class _NeverOption(grpc_observability.OpenTelemetryPluginOption):
    def get_label_injector(self):  # no is_active_*: never active
        return _Labels({"never": "seen"})


def test_plugin_options_are_active_per_channel_and_per_server():
    reader = InMemoryMetricReader()
    plugin = grpc_observability.OpenTelemetryPlugin(
        plugin_options=[_MeshOption(), _NeverOption()],
        meter_provider=metrics_sdk.MeterProvider(metric_readers=[reader]))
    with plugin:
        server, port = _server()
        try:
            for target in ("127.0.0.1:%d" % port, "localhost:%d" % port):
                with grpc.insecure_channel(target) as channel:
                    assert channel.unary_unary("/obs.Svc/Echo", _registered_method=True)(
                        b"x", timeout=CALL_TIMEOUT) == b"x"
            seen = wait_for(reader, lambda s: count(s, "grpc.client.attempt.duration") >= 2
                            and count(s, "grpc.server.call.duration") >= 2)
        finally:
            server.stop(None).wait(10)
    local = "dns:///localhost:%d" % port
    direct = "dns:///127.0.0.1:%d" % port
    # the option is active on the localhost channel only
    for name in ("grpc.client.attempt.started", "grpc.client.attempt.duration",
                 "grpc.client.attempt.sent_total_compressed_message_size"):
        assert count(seen, name, grpc_target=local, mesh_side="local") == 1, name
        assert count(seen, name, grpc_target=direct) == 1, name
        assert count(seen, name, grpc_target=direct, mesh_side="local") == 0, name
    # and on the (plain) server, for both calls
    assert count(seen, "grpc.server.call.started", mesh_side="local") == 2
    assert count(seen, "grpc.server.call.duration", mesh_side="local",
                 grpc_method="obs.Svc/Echo", grpc_status="OK") == 2
    assert not any(dict(attrs).get("never") for _, attrs in seen)
