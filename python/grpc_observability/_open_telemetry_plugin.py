"""OpenTelemetryPlugin: grpcio-observability's class, recording from the
engine's per-call records (grpc/_metrics.py)."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Type, Union

import grpc
from grpc import _metrics

GRPC_METHOD_LABEL = "grpc.method"
GRPC_TARGET_LABEL = "grpc.target"
GRPC_STATUS_LABEL = "grpc.status"
GRPC_OTHER_LABEL_VALUE = "other"

_CODE_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}

# name, unit, description (gRFC A66)
_CLIENT_ATTEMPT_STARTED = ("grpc.client.attempt.started", "{attempt}",
                           "Number of client call attempts started")
_CLIENT_ATTEMPT_DURATION = ("grpc.client.attempt.duration", "s",
                            "Time taken to complete a client call attempt")
_CLIENT_ATTEMPT_SENT = ("grpc.client.attempt.sent_total_compressed_message_size", "By",
                        "Compressed message bytes sent per client call attempt")
_CLIENT_ATTEMPT_RCVD = ("grpc.client.attempt.rcvd_total_compressed_message_size", "By",
                        "Compressed message bytes received per call attempt")
_SERVER_STARTED = ("grpc.server.call.started", "{call}", "Number of server calls started")
_SERVER_DURATION = ("grpc.server.call.duration", "s",
                    "Time taken to complete a call from server transport's perspective")
_SERVER_SENT = ("grpc.server.call.sent_total_compressed_message_size", "By",
                "Compressed message bytes sent per server call")
_SERVER_RCVD = ("grpc.server.call.rcvd_total_compressed_message_size", "By",
                "Compressed message bytes received per server call")

_global_lock = threading.Lock()
_global: Optional["OpenTelemetryPlugin"] = None


class OpenTelemetryLabelInjector:
    """Adds labels to the calls recorded, as grpcio's: the labels of
    get_additional_labels(False) join every metric of the channels and
    servers on which its plugin option is active (grpcgo exchanges no
    labels with the peer: include_exchange_labels is always False)."""

    def get_labels_for_exchange(self) -> Dict[str, Union[str, bytes]]:
        """Labels to send the peer (grpcio's CSM metadata exchange; grpcgo
        sends none)."""
        raise NotImplementedError()

    def get_additional_labels(self, include_exchange_labels: bool) -> Dict[str, str]:
        """Labels added to each metric recorded."""
        raise NotImplementedError()

    def deserialize_labels(self, labels: Dict[str, Union[str, bytes]]) -> Dict[str, Union[str, bytes]]:
        return labels


class OpenTelemetryPluginOption:
    """An option of an OpenTelemetryPlugin, active per channel and per
    server: on a channel when ``is_active_on_client_channel(target)`` says
    so, on a server when ``is_active_on_server(xds)`` does (both optional;
    without them the option is inactive). An active option's
    ``get_label_injector()`` adds its labels to that channel's or server's
    metrics."""


class OpenTelemetryPlugin:
    """Records grpcio's per-call metrics into meter_provider's instruments.

    Args:
      plugin_options: OpenTelemetryPluginOptions, active per channel (by
        target) and per server (by whether it is xDS-enabled); an active
        option's label injector adds labels to the metrics recorded there.
      meter_provider: the OpenTelemetry MeterProvider; None records nothing.
      target_attribute_filter: called with a channel's target; False
        records "other" instead of it.
      generic_method_attribute_filter: called with a method that no stub
        or server registered; True records its name, False (the default)
        "other". Registered methods are always recorded by name.
    """

    def __init__(
        self,
        *,
        plugin_options: Iterable[OpenTelemetryPluginOption] = (),
        meter_provider: Optional[Any] = None,
        target_attribute_filter: Optional[Callable[[str], bool]] = None,
        generic_method_attribute_filter: Optional[Callable[[str], bool]] = None,
    ) -> None:
        self.plugin_options = list(plugin_options)
        self.meter_provider = meter_provider
        self.target_attribute_filter = target_attribute_filter or (lambda target: True)
        self.generic_method_attribute_filter = generic_method_attribute_filter or (
            lambda method: False)
        self._recorders: Optional[Dict[str, Any]] = None
        self._targets: Dict[str, str] = {}
        # the options active per channel target, and per server kind (xds)
        self._client_options: Dict[str, List[OpenTelemetryPluginOption]] = {}
        self._server_options: Dict[bool, List[OpenTelemetryPluginOption]] = {}

    # -- registration ----------------------------------------------------------
    def register_global(self) -> None:
        """Registers this plugin for every channel and server made from now
        on in the process.

        Raises:
          RuntimeError: if a global plugin is already registered.
        """
        global _global
        with _global_lock:
            if _global is not None:
                raise RuntimeError("gRPC Python observability was already initialized!")
            self._make_instruments()
            _metrics.start(self._record)
            _global = self

    def deregister_global(self) -> None:
        """Stops recording (channels and servers stop recording too). As in
        grpcio, it ends whichever plugin is registered globally.

        Raises:
          RuntimeError: if no plugin is registered globally.
        """
        global _global
        with _global_lock:
            if _global is None:
                raise RuntimeError(
                    "Trying to end gRPC Python observability without initialize first!")
            _metrics.stop(_global._record)
            _global = None

    def __enter__(self) -> None:
        # grpcio's returns None too: `with plugin as p` binds None there.
        self.register_global()

    def __exit__(self, exc_type: Optional[Type[BaseException]],
                 exc_val: Optional[BaseException], exc_tb: Optional[TracebackType]) -> None:
        self.deregister_global()

    # -- recording -------------------------------------------------------------
    def _make_instruments(self) -> None:
        if self._recorders is not None:
            return
        recorders: Dict[str, Any] = {}
        if self.meter_provider is not None:
            meter = self.meter_provider.get_meter("grpc-python", grpc.__version__)
            for spec in (_CLIENT_ATTEMPT_STARTED, _SERVER_STARTED):
                recorders[spec[0]] = meter.create_counter(name=spec[0], unit=spec[1],
                                                          description=spec[2])
            # grpcio-observability 1.85's base metrics: no grpc.client.call.duration
            # ("not required yet" there).
            for spec in (_CLIENT_ATTEMPT_DURATION, _CLIENT_ATTEMPT_SENT, _CLIENT_ATTEMPT_RCVD,
                         _SERVER_DURATION, _SERVER_SENT, _SERVER_RCVD):
                recorders[spec[0]] = meter.create_histogram(name=spec[0], unit=spec[1],
                                                            description=spec[2])
        self._recorders = recorders

    def _method(self, method: str) -> str:
        if _metrics.is_registered(method) or self.generic_method_attribute_filter(method):
            return method
        return GRPC_OTHER_LABEL_VALUE

    def _target(self, target: str) -> str:
        shown = self._targets.get(target)
        if shown is None:
            shown = target if self.target_attribute_filter(target) else GRPC_OTHER_LABEL_VALUE
            self._targets[target] = shown
        return shown

    def _active_options(self, client: bool, target: str) -> List[OpenTelemetryPluginOption]:
        if not self.plugin_options:
            return []
        if client:
            active = self._client_options.get(target)
            if active is None:
                active = self._client_options[target] = [
                    o for o in self.plugin_options
                    if _asks(o, "is_active_on_client_channel", target)]
            return active
        xds = target == "xds"
        active = self._server_options.get(xds)
        if active is None:
            active = self._server_options[xds] = [
                o for o in self.plugin_options if _asks(o, "is_active_on_server", xds)]
        return active

    def _record(self, record: Tuple[int, str, str, int, float, int, int]) -> None:
        recorders = self._recorders
        if not recorders:
            return
        kind, method, target, code, seconds, sent, received = record
        attributes: Dict[str, Any] = {}
        client = kind in (_metrics.ATTEMPT_STARTED, _metrics.ATTEMPT_ENDED)
        for option in self._active_options(client, target):
            injector = getattr(option, "get_label_injector", lambda: None)()
            if injector is not None and hasattr(injector, "get_additional_labels"):
                attributes.update(injector.get_additional_labels(False))
        attributes[GRPC_METHOD_LABEL] = self._method(method)
        if client:
            attributes[GRPC_TARGET_LABEL] = self._target(target)
        if kind == _metrics.ATTEMPT_STARTED:
            recorders[_CLIENT_ATTEMPT_STARTED[0]].add(1, attributes=attributes)
            return
        if kind == _metrics.SERVER_STARTED:
            recorders[_SERVER_STARTED[0]].add(1, attributes=attributes)
            return
        attributes[GRPC_STATUS_LABEL] = _CODE_NAMES.get(code, "UNKNOWN")
        # Sizes first, then the duration, as grpcio's call tracers record them:
        # an OpenTelemetry reader lists metrics in the order first recorded.
        if kind == _metrics.ATTEMPT_ENDED:
            recorders[_CLIENT_ATTEMPT_SENT[0]].record(sent, attributes=attributes)
            recorders[_CLIENT_ATTEMPT_RCVD[0]].record(received, attributes=attributes)
            recorders[_CLIENT_ATTEMPT_DURATION[0]].record(seconds, attributes=attributes)
        elif kind == _metrics.SERVER_ENDED:
            recorders[_SERVER_SENT[0]].record(sent, attributes=attributes)
            recorders[_SERVER_RCVD[0]].record(received, attributes=attributes)
            recorders[_SERVER_DURATION[0]].record(seconds, attributes=attributes)


def _asks(option: Any, question: str, arg: Any) -> bool:
    ask = getattr(option, question, None)
    return bool(ask(arg)) if ask is not None else False


def _get_enabled_optional_labels() -> List[str]:
    return []
