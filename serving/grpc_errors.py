"""The one place where errors become gRPC status codes (and where every call is counted)."""

from __future__ import annotations

import time

import grpc

from vahini.serving import metrics
from vahini.errors import DeadlineExceeded, EndpointRejected, InvalidEvent, NotFound, Reason, StoreUnavailable
from vahini.logs import get_logger

log = get_logger(__name__)

# Trailing metadata on every status this server sets, so a client can tell the
# server's own answer (e.g. UNAVAILABLE because a store or a model endpoint is down)
# from a failure to reach the server at all (refused, TLS mismatch).
ANSWERED_BY = ("vahini-answered-by", "server")


class BadRequest(Exception):
    """A request the server refuses as sent; `code` says how."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code


def status_of(exc: Exception) -> grpc.StatusCode:
    if isinstance(exc, BadRequest):
        return exc.code
    if isinstance(exc, NotFound):
        return grpc.StatusCode.NOT_FOUND
    if isinstance(exc, InvalidEvent):
        if exc.reason in (Reason.UNKNOWN_ENTITY, Reason.UNKNOWN_GROUP):
            return grpc.StatusCode.NOT_FOUND
        return grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(exc, DeadlineExceeded):
        return grpc.StatusCode.DEADLINE_EXCEEDED
    if isinstance(exc, StoreUnavailable):
        return grpc.StatusCode.UNAVAILABLE
    if isinstance(exc, EndpointRejected):
        return grpc.StatusCode.FAILED_PRECONDITION
    return grpc.StatusCode.INTERNAL


class ErrorMapping(grpc.ServerInterceptor):
    """Turns exceptions from unary handlers into a status with a readable message,
    and counts every call by method and status code."""

    def __init__(self):
        # gRPC asks interceptors for every call: each method's guarded handler is built once.
        self._guarded: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = handler_call_details.method
        cached = self._guarded.get(method)
        if cached is None or cached[0] is not handler:
            cached = self._guarded[method] = (handler, _guarded(handler, method))
        return cached[1]


def _guarded(handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
    inner, name = handler.unary_unary, method.rsplit("/", 1)[-1]
    succeeded, seconds = metrics.GRPC_REQUESTS.labels(name, grpc.StatusCode.OK.name), metrics.GRPC_SECONDS.labels(name)

    def guarded(request, context):
        started = time.perf_counter()
        try:
            response = inner(request, context)
        except Exception as exc:  # every error must become a status
            code = status_of(exc)
            metrics.GRPC_REQUESTS.labels(name, code.name).inc()
            if code == grpc.StatusCode.INTERNAL:
                log.exception("grpc_internal_error", method=method)
            context.set_trailing_metadata((ANSWERED_BY,))
            context.abort(code, str(exc) if code != grpc.StatusCode.INTERNAL else f"internal error: {exc}")
        finally:
            seconds.observe(time.perf_counter() - started)
        succeeded.inc()
        return response

    return grpc.unary_unary_rpc_method_handler(guarded, request_deserializer=handler.request_deserializer,
                                               response_serializer=handler.response_serializer)


def time_left(context: grpc.ServicerContext) -> float | None:
    """Seconds left of the caller's deadline (None: no deadline); DEADLINE_EXCEEDED once it has passed."""
    remaining = context.time_remaining()
    if remaining is None or remaining > 1e9:  # gRPC reports "no deadline" as a huge number
        return None
    if remaining <= 0:
        raise BadRequest(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded before the response was ready")
    return remaining
