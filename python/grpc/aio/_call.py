"""The client-side call objects of grpc.aio and its errors."""

import grpc


class BaseError(Exception):
    """The base of grpc.aio's own exceptions."""


class UsageError(BaseError):
    """The API was used in a way it does not support."""


class AbortError(BaseError):
    """Raised inside a handler that aborted its RPC."""


class InternalError(BaseError):
    """An internal error of the runtime."""


class AioRpcError(grpc.RpcError):
    """An RPC that ended with a non-OK status (asyncio API)."""

    def __init__(self, code, initial_metadata, trailing_metadata, details=None,
                 debug_error_string=None):
        super().__init__()
        self._code = code
        self._details = details
        self._initial_metadata = initial_metadata
        self._trailing_metadata = trailing_metadata
        self._debug_error_string = debug_error_string

    def code(self):
        return self._code

    def details(self):
        return self._details

    def initial_metadata(self):
        return self._initial_metadata

    def trailing_metadata(self):
        return self._trailing_metadata

    def debug_error_string(self):
        return self._debug_error_string

    def _repr(self):
        return ("<{} of RPC that terminated with:\n\tstatus = {}\n\tdetails = \"{}\"\n"
                "\tdebug_error_string = \"{}\"\n>").format(
            self.__class__.__name__, self._code, self._details, self._debug_error_string)

    def __repr__(self):
        return self._repr()

    def __str__(self):
        return self._repr()

    def __reduce__(self):
        return (type(self), (self._code, self._initial_metadata, self._trailing_metadata,
                             self._details, self._debug_error_string))
