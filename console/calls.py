"""`Try it`: one call to the gRPC server (console.target) with the signed-in caller's
token, so the server's own rights apply, shaped as tables for the page."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

import grpc
import numpy as np

from vahini.cli.channel import connect
from vahini.serving.api import feature_service_pb2 as fpb
from vahini.serving.api import interaction_service_pb2 as ipb
from vahini.serving.api import model_proxy_pb2 as mpb
from vahini.serving.api.feature_service_pb2_grpc import FeatureServiceStub
from vahini.serving.api.interaction_service_pb2_grpc import InteractionServiceStub
from vahini.serving.api.model_proxy_pb2_grpc import ModelProxyStub
from vahini.serving.convert import array_of
from vahini.serving.retrieval import STATUS_NAMES
from vahini.settings import Settings

TIMEOUT_S = 5.0


@dataclass
class Table:
    """What a call answered, as a table: `cells[i][j]` is shown as text; `marked[i][j]`
    says a default stood in for that cell (or, for a whole column, `marked_columns`)."""

    title: str
    columns: list[str]
    cells: list[list[str]]
    marked: list[list[bool]] = field(default_factory=list)
    marked_columns: dict[str, str] = field(default_factory=dict)  # column -> why, e.g. "2 of 3 rows defaulted"
    notes: list[str] = field(default_factory=list)
    milliseconds: float = 0.0


class CallFailed(Exception):
    """The server refused or failed the call: its status code and details."""


class Caller:
    def __init__(self, settings: Settings):
        c = settings.console
        self.target = c.target or f"{settings.serving.host}:{settings.serving.port}"
        self._ca_file = str(c.target_ca_file) if c.target_ca_file else None

    def _call(self, token: str | None, stub_of, method: str, request):
        channel, metadata = connect(self.target, token, ca_file=self._ca_file)
        started = time.perf_counter()
        try:
            reply = getattr(stub_of(channel), method)(request, timeout=TIMEOUT_S, metadata=metadata)
        except grpc.RpcError as exc:
            raise CallFailed(f"{exc.code().name}: {exc.details()}") from None
        finally:
            channel.close()
        return reply, (time.perf_counter() - started) * 1000

    def model(self, token: str | None, model: str, context: dict[str, list[str]], version: int = 0) -> Table:
        request = mpb.GetFeaturesRequest(model=model, version=version, context={
            name: mpb.ContextIds(ids=ids) for name, ids in context.items()})
        reply, ms = self._call(token, ModelProxyStub, "GetFeatures", request)
        matrix = np.frombuffer(reply.matrix, "<f4").reshape(tuple(reply.shape))
        scores = {s.node: np.frombuffer(s.values, "<f4") for s in reply.scores}
        columns = ["row", *reply.columns, *(f"score.{n}" for n in scores)]
        cells = [[row_id, *(_number(v) for v in matrix[i]), *(_number(s[i]) for s in scores.values())]
                 for i, row_id in enumerate(reply.row_ids)]
        marked_columns = {}
        for column, counts in reply.counts.items():
            defaulted = counts.missing + counts.expired + counts.unreadable
            if defaulted:
                marked_columns[column] = f"{defaulted} of {len(reply.row_ids)} rows defaulted"
        notes = [f"{reply.model} v{reply.version}, {len(reply.row_ids)} rows x {len(reply.columns)} columns"]
        notes += [f"scored by {node} at {s.endpoint}" for node, s in ((s.node, s) for s in reply.scores)]
        if reply.degraded:
            notes.append(f"degraded: {reply.degraded}")
        return Table(f"{reply.model} v{reply.version}", columns, cells, marked_columns=marked_columns, notes=notes,
                     milliseconds=ms)

    def retrieve(self, token: str | None, entity: str, keys: list[str], groups: list[str]) -> Table:
        request = fpb.RetrieveRequest(entity=entity, keys=keys, groups=[fpb.GroupSelector(group=g) for g in groups])
        reply, ms = self._call(token, FeatureServiceStub, "Retrieve", request)
        columns = ["key"]
        cells: list[list[str]] = [[k] for k in reply.keys]
        marked: list[list[bool]] = [[False] for _ in reply.keys]
        for group in reply.groups:
            for feature in group.features:
                columns.append(f"{group.group}.{feature.name}")
                status = np.frombuffer(feature.status, np.int8)
                values = list(feature.strings.values) if feature.type == "string" else array_of(feature.tensor)
                for i in range(len(reply.keys)):
                    cells[i].append(_value(values[i]) + ("" if status[i] == 0 else f" ({STATUS_NAMES[status[i]]})"))
                    marked[i].append(bool(status[i]))
        return Table(f"{entity}: {', '.join(groups)}", columns, cells, marked, milliseconds=ms)

    def history(self, token: str | None, user_id: str, types: list[str], limit: int) -> Table:
        request = ipb.GetInteractionsRequest(user_id=user_id, limit=limit,
                                             types=[ipb.InteractionType.Value(t) for t in types])
        reply, ms = self._call(token, InteractionServiceStub, "GetInteractions", request)
        cells = [[_iso(r.event_time_ms), ipb.InteractionType.Name(r.type), r.product_id, r.category_id, r.event_id]
                 for r in reply.interactions]
        return Table(f"history of {user_id}", ["event time", "type", "product", "category", "event id"], cells,
                     notes=[f"answered by the {reply.source} tier, newest first"], milliseconds=ms)


def _number(value) -> str:
    return f"{float(value):.6g}"


def _value(value) -> str:
    if isinstance(value, np.ndarray):
        shown = ", ".join(_value(v) for v in value[:4])
        return f"[{shown}{', ...' if len(value) > 4 else ''}]"
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"  # as JSON, and as `vahini get` prints it
    if isinstance(value, (np.floating, float)):
        return _number(value)
    return str(value.item() if isinstance(value, np.generic) else value)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
