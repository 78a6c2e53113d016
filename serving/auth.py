"""Who may call what: per-caller bearer tokens and their rights.

Callers are declared in a YAML file (`serving.auth.tokens_file`) that holds each
caller's name, the SHA-256 of its token (never the token) and what it may do:

    callers:
      - name: ranker-home
        token_sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
        allow: [FeatureService.Retrieve, ModelProxy.GetFeatures]   # or FeatureService.*, or *
        groups: [user_profile, product_core]   # optional; absent: every group
        models: [home_ranker]                  # optional; absent: every model
      - name: operator
        token_sha256: ...
        allow: [Console.Read, Console.Operate] # the web console (vahini console): see, and act

The file is re-read when it changes; a version that fails validation is logged
with its file and line, and the last good one stays in force.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import grpc
from prometheus_client import Counter

from vahini.errors import BadSettings, ConfigError, ConfigProblem
from vahini.logs import get_logger
from vahini.registry.yaml_lines import LocatedList, LocatedMap, load_located

log = get_logger(__name__)

CALLS = Counter("vahini_grpc_calls_by_caller_total", "gRPC calls by caller, method and outcome",
                ["caller", "method", "outcome"])
RELOAD_FAILURES = Counter("vahini_auth_reload_failures_total", "Tokens-file versions rejected (the last good one "
                          "stays in force)")
METHODS = ("FeatureService.Retrieve", "FeatureService.Persist", "FeatureService.Search",
           "InteractionService.GetInteractions",
           "ModelProxy.GetFeatures", "ServerReflection.ServerReflectionInfo",
           "Console.Read", "Console.Operate")  # the operator console's rights (vahini console)
OPEN_SERVICES = ("grpc.health.v1.Health",)
REFLECTION_SERVICES = ("grpc.reflection.v1alpha.ServerReflection", "grpc.reflection.v1.ServerReflection")
SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Caller:
    name: str
    token_sha256: str
    allow: frozenset[str]
    groups: frozenset[str] | None = None  # None: every group
    models: frozenset[str] | None = None  # None: every model

    def may_call(self, method: str) -> bool:
        service = method.split(".", 1)[0]
        return bool({"*", method, f"{service}.*"} & self.allow)


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def load_callers(path: Path) -> dict[str, Caller]:
    """Callers by token SHA-256; raise ConfigError (with file and line) on any mistake."""
    problems: list[ConfigProblem] = []
    doc = load_located(path, problems)
    file = str(path)
    if not problems and (not isinstance(doc, LocatedMap) or not isinstance(doc.get("callers"), LocatedList)):
        problems.append(ConfigProblem(file, 1, "the tokens file must have a list 'callers:'"))
    callers: dict[str, Caller] = {}
    for item in [] if problems else doc["callers"]:
        caller = _caller(file, item, problems)
        if caller is None:
            continue
        if caller.token_sha256 in callers:
            problems.append(ConfigProblem(file, item.line, f"caller '{caller.name}' has the token of caller "
                                                           f"'{callers[caller.token_sha256].name}'"))
        callers[caller.token_sha256] = caller
    if problems:
        raise ConfigError(problems)
    return callers


def _caller(file: str, item, problems: list[ConfigProblem]) -> Caller | None:
    line = getattr(item, "line", 1)
    if not isinstance(item, LocatedMap):
        problems.append(ConfigProblem(file, line, "each caller must be a mapping"))
        return None
    unknown = set(item) - {"name", "token_sha256", "allow", "groups", "models", "description"}
    missing = {"name", "token_sha256", "allow"} - set(item)
    if unknown or missing:
        what = f"unknown field(s) {sorted(unknown)}" if unknown else f"missing field(s) {sorted(missing)}"
        problems.append(ConfigProblem(file, line, f"caller {item.get('name')!r}: {what}"))
        return None
    name, digest = str(item["name"]), str(item["token_sha256"]).lower()
    if not SHA256.match(digest):
        problems.append(ConfigProblem(file, item.line_of("token_sha256"), f"caller '{name}': token_sha256 must be "
                                      f"64 hex digits (the SHA-256 of the token, never the token itself)"))
        return None
    lists = {key: item.get(key) for key in ("allow", "groups", "models")}
    for key, value in lists.items():
        if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
            problems.append(ConfigProblem(file, item.line_of(key), f"caller '{name}': {key} must be a list of names"))
            return None
    bad = [m for m in lists["allow"] if m != "*" and m not in METHODS and not _is_service_wildcard(m)]
    if bad:
        problems.append(ConfigProblem(file, item.line_of("allow"), f"caller '{name}': unknown method(s) {bad}; "
                                      f"known: {', '.join(METHODS)} (or Service.*, or *)"))
        return None
    optional = lambda key: None if lists[key] is None else frozenset(lists[key])  # noqa: E731
    return Caller(name, digest, frozenset(lists["allow"]), optional("groups"), optional("models"))


def _is_service_wildcard(method: str) -> bool:
    return method.endswith(".*") and any(m.startswith(method[:-1]) for m in METHODS)


class CallerTable:
    """The callers of the tokens file, re-read when the file changes (checked at
    most every `reload_interval_s`, on the calls themselves)."""

    def __init__(self, path: Path, reload_interval_s: float = 1.0, clock: Callable[[], float] = time.monotonic):
        self._path = path
        self._interval = reload_interval_s
        self._clock = clock
        self._lock = threading.Lock()
        try:
            self._stamp = self._file_stamp()
            self._callers = load_callers(path)
        except (OSError, ConfigError) as exc:
            raise BadSettings(f"serving.auth.tokens_file: {exc}") from None
        self._checked = clock()

    def caller(self, token: str) -> Caller | None:
        """The caller whose token this is. The table is keyed by the token's SHA-256, so a
        lookup's timing says nothing about the token itself."""
        self._maybe_reload()
        return self._callers.get(token_sha256(token))

    def _file_stamp(self) -> tuple[int, int]:
        st = os.stat(self._path)
        return st.st_mtime_ns, st.st_size

    def _maybe_reload(self) -> None:
        now = self._clock()
        if now - self._checked < self._interval:
            return
        with self._lock:
            if now - self._checked < self._interval:
                return
            self._checked = now
            try:
                stamp = self._file_stamp()
                if stamp == self._stamp:
                    return
                self._stamp = stamp
                self._callers = load_callers(self._path)
                log.info("callers_reloaded", file=str(self._path), callers=len(self._callers))
            except (OSError, ConfigError) as exc:
                RELOAD_FAILURES.inc()
                log.error("callers_reload_rejected", file=str(self._path), error=str(exc),
                          kept="the last good version")


def method_name(path: str) -> str:
    """'/vahini.v1.FeatureService/Retrieve' -> 'FeatureService.Retrieve'."""
    service, _, method = path.lstrip("/").rpartition("/")
    return f"{service.rsplit('.', 1)[-1]}.{method}"


# The groups or models a request names, for callers limited to some of them.
def _retrieve(request) -> tuple[str, list[str]]:
    return "groups", [g.group for g in request.groups]


def _persist(request) -> tuple[str, list[str]]:
    return "groups", [u.group for u in request.updates]


def _get_features(request) -> tuple[str, list[str]]:
    return "models", [request.model]


RESOURCES = {"FeatureService.Retrieve": _retrieve, "FeatureService.Persist": _persist,
             "ModelProxy.GetFeatures": _get_features}


class CallerAuth(grpc.ServerInterceptor):
    """UNAUTHENTICATED without a known bearer token; PERMISSION_DENIED, naming the
    method, group or model, for a caller outside its rights. Health checks stay
    open; reflection is open only when `open_reflection` says so."""

    def __init__(self, callers: CallerTable, open_reflection: bool):
        self._callers = callers
        self._open_reflection = open_reflection

    def intercept_service(self, continuation, handler_call_details):
        path = handler_call_details.method
        service = path.lstrip("/").split("/", 1)[0]
        handler = continuation(handler_call_details)
        if handler is None or service in OPEN_SERVICES or (service in REFLECTION_SERVICES and self._open_reflection):
            return handler
        token = _bearer(handler_call_details.invocation_metadata)
        caller = self._callers.caller(token) if token else None
        method = method_name(path)
        if caller is None:
            CALLS.labels("unknown", method, "unauthenticated").inc()
            return _refusal(handler, grpc.StatusCode.UNAUTHENTICATED,
                            "a valid bearer token is required (metadata 'authorization: Bearer <token>')")
        if not caller.may_call(method):
            CALLS.labels(caller.name, method, "denied").inc()
            return _refusal(handler, grpc.StatusCode.PERMISSION_DENIED, f"caller '{caller.name}' may not call {method}")
        if handler.unary_unary is None or method not in RESOURCES:
            CALLS.labels(caller.name, method, "allowed").inc()
            return handler
        return self._checked(handler, caller, method)

    @staticmethod
    def _checked(handler, caller: Caller, method: str):
        inner, resources = handler.unary_unary, RESOURCES[method]

        def checked(request, context):
            kind, names = resources(request)
            allowed = getattr(caller, kind)
            denied = [] if allowed is None else sorted(set(names) - allowed)
            if denied:
                CALLS.labels(caller.name, method, "denied").inc()
                context.abort(grpc.StatusCode.PERMISSION_DENIED,
                              f"caller '{caller.name}' may not read or write {kind} {denied}")
            CALLS.labels(caller.name, method, "allowed").inc()
            return inner(request, context)

        return grpc.unary_unary_rpc_method_handler(checked, request_deserializer=handler.request_deserializer,
                                                   response_serializer=handler.response_serializer)


def _bearer(metadata) -> str | None:
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str) and value[:7].lower() == "bearer ":
            return value[7:].strip() or None
    return None


def _refusal(handler: grpc.RpcMethodHandler, code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    """A handler of the same kind as `handler` that only refuses."""
    def refuse(_request, context):
        context.abort(code, message)

    kinds = {(False, False): grpc.unary_unary_rpc_method_handler, (False, True): grpc.unary_stream_rpc_method_handler,
             (True, False): grpc.stream_unary_rpc_method_handler, (True, True): grpc.stream_stream_rpc_method_handler}
    make = kinds[(handler.request_streaming, handler.response_streaming)]
    return make(refuse, request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)
