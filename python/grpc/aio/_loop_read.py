"""The loop's reading of a ping-pong's connection (core/loopread.go): while
a call's reads are direct and the call is alone on a plain TCP or unix
connection, its event loop watches a dup of the socket and, woken by it,
reads and handles the frames itself (the pump), with no goroutine woken
between. One watch per call, for a server call's context and a client
stream alike."""

import os


class SocketWatch:
    """A call's socket watch: ask() after a read armed its wait (the engine
    says yes with a dup of the socket, at most `asks` times asked), stop()
    at the call's end. The pump stops it too once the engine gave the
    reading back to the connection's goroutine."""

    __slots__ = ("loop", "q", "handle", "switch", "pump", "asks", "fd")

    def __init__(self, loop, q, handle, switch, pump, asks):
        self.loop = loop
        self.q = q
        self.handle = handle
        self.switch = switch  # aio_call_loop_read / aio_stream_loop_read
        self.pump = pump  # aio_call_pump / aio_stream_pump
        self.asks = asks  # a refusal costs a crossing: a few at most
        self.fd = -1

    def ask(self):
        self.asks -= 1
        fd = self.switch(self.handle, True)
        if fd >= 0:
            self.fd = fd
            self.loop.add_reader(fd, self._pumped)

    def _pumped(self):
        """The loop's reader of the socket."""
        q = self.q
        if not self.pump(self.handle, q.cq, q.waiting):
            self.stop(give_back=False)

    def stop(self, give_back=True):
        fd = self.fd
        if fd < 0:
            return
        self.fd = -1
        if give_back:
            self.switch(self.handle, False)
        if not self.loop.is_closed():
            self.loop.remove_reader(fd)
        os.close(fd)
