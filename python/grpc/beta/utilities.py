"""Beta utilities: a future that matures when a beta Channel is ready."""


import grpc
from grpc.framework.foundation import future


class _ChannelReadyFuture(future.Future):
    """A framework Future over grpc.channel_ready_future."""

    def __init__(self, channel):
        self._ready = grpc.channel_ready_future(channel._channel)

    def cancel(self):
        return self._ready.cancel()

    def cancelled(self):
        return self._ready.cancelled()

    def running(self):
        return self._ready.running()

    def done(self):
        return self._ready.done()

    def _translate(self, method, timeout):
        try:
            return method(timeout)
        except grpc.FutureTimeoutError:
            raise future.TimeoutError() from None
        except grpc.FutureCancelledError:
            raise future.CancelledError() from None

    def result(self, timeout=None):
        return self._translate(self._ready.result, timeout)

    def exception(self, timeout=None):
        return self._translate(self._ready.exception, timeout)

    def traceback(self, timeout=None):
        return self._translate(self._ready.traceback, timeout)

    def add_done_callback(self, fn):
        self._ready.add_done_callback(lambda unused: fn(self))


def channel_ready_future(channel):
    """A future.Future that matures when the beta channel is READY.

    Cancelling it stops only the future, not the channel's connecting.
    """
    return _ChannelReadyFuture(channel)


