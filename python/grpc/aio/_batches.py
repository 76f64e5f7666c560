"""Messages one end of a grpc.aio stream hands to the engine in batches.

The messages written before the writing task next yields (or BATCH of them)
cross into the engine in one call (the server's responses through
aio_call_send_many, a client's request iterator through
aio_stream_send_many), so the stream's sender goroutine is woken once for
them all. When the engine's queue is full, an operation queues the rest,
and its completion hands over what was written meanwhile. A message that
answers one just received (`prompt`) starts its batch at once rather than
at the loop's next turn: a ping-pong would otherwise wait one more turn
per message. One per stream end; used on the loop's thread only.
"""

import asyncio

BATCH = 256


class SendBatches:
    __slots__ = ("out", "failed", "prompt", "_loop", "_q", "_hot", "_send", "_handle",
                 "sending", "_op")

    def __init__(self, loop, q, hot, send, handle):
        self.out = []  # written, not yet handed to the engine
        self.failed = False  # the call takes no more
        self.prompt = False  # the next batch starts at once (it answers a message)
        self._loop, self._q, self._hot = loop, q, hot
        self._send, self._handle = send, handle  # send(cq, token, handle, out)
        self.sending = None  # the future of a batch being queued
        self._op = None  # (token, op) of that batch

    def put(self, data):
        """Keeps data for the next batch; False once a full batch waits (the
        writer then awaits flush())."""
        out = self.out
        out.append(data)
        if len(out) == 1:
            if self.sending is None:
                if self.prompt:
                    self.prompt = False
                    self.flush_now()
                else:
                    self._loop.call_soon(self.flush_now)
        elif len(out) >= BATCH:
            return False
        return True

    def flush_now(self):
        """Hands the messages kept so far to the engine, unless a batch is
        still being queued (its completion hands them over)."""
        out = self.out
        if not out or self.sending is not None or self.failed:
            return
        self.out = []
        q = self._q
        token = next(q.tokens)
        sent = self._send(q.cq, token, self._handle, out)
        if sent is True:
            return
        if sent is False:
            self.failed = True
            return
        # The engine's queue is full: an operation queues the rest.
        future = self._loop.create_future()
        q.waiting[token] = future
        self.sending, self._op = future, (token, sent)
        future.add_done_callback(self._sent)

    def _sent(self, future):
        """A batch's operation completed: its outcome, then the messages
        kept meanwhile. Runs once per batch, from the future's callback or
        from flush, whichever comes first."""
        if self.sending is not future:
            return  # flush took it already
        token, op = self._op
        self.sending = self._op = None
        if future.cancelled():  # the task awaiting it was cancelled: the call is ending
            self._q.forget(token)
            self.failed = True
            return
        if not self._hot.aio_result(op):
            self.failed = True
        elif self.out:
            self.flush_now()

    async def flush(self, ended=None, shielded=False):
        """Waits until every message kept is queued in the engine; False if
        the call takes no more (or ended(), if given, says it ended).
        shielded: a cancellation of the awaiting task leaves the batch being
        queued alone (its completion still hands over the rest) instead of
        dropping it with the call."""
        while True:
            sending = self.sending
            if sending is not None:
                if not sending.done():
                    await (asyncio.shield(sending) if shielded else sending)
                # Awaiting a future that is already done does not yield, so
                # its callback may not have run yet (the task ran first in
                # the loop's turn that completed it): take its outcome here,
                # or this loop would spin with the event loop blocked.
                self._sent(sending)
                continue
            if self.failed or (ended is not None and ended()):
                self.out = []
                return False
            if not self.out:
                return True
            self.flush_now()
