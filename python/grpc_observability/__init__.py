"""grpcio-observability's OpenTelemetry plugin surface, on grpcgo's engine.

``OpenTelemetryPlugin(meter_provider=...)`` registered with
``register_global()`` (or used as a context manager) records grpcio's
standard per-call metrics (gRFC A66) for every channel and server made
while it is registered, from the engine's own per-call stats (the metrics
grpcio-observability 1.85 exports: no ``grpc.client.call.duration``):

=====================================================  =========  ==========================
metric                                                 kind       attributes
=====================================================  =========  ==========================
grpc.client.attempt.started                            counter    method, target
grpc.client.attempt.duration                           histogram  method, target, status
grpc.client.attempt.sent_total_compressed_message_size histogram  method, target, status
grpc.client.attempt.rcvd_total_compressed_message_size histogram  method, target, status
grpc.server.call.started                               counter    method
grpc.server.call.duration                              histogram  method, status
grpc.server.call.sent_total_compressed_message_size    histogram  method, status
grpc.server.call.rcvd_total_compressed_message_size    histogram  method, status
=====================================================  =========  ==========================

This is grpcgo's own pure-Python module (grpcio-observability's is compiled
against grpcio's C core and cannot run here): do not install the
``grpcio-observability`` distribution beside grpcgo. It needs
``opentelemetry-api`` (and an SDK for a MeterProvider) installed.
"""

from grpc_observability._open_telemetry_plugin import (
    OpenTelemetryLabelInjector,
    OpenTelemetryPlugin,
    OpenTelemetryPluginOption,
)

__all__ = ("OpenTelemetryPlugin", "OpenTelemetryPluginOption", "OpenTelemetryLabelInjector")
