"""gRPC InteractionService: a user's interaction history, newest first."""

from __future__ import annotations

from vahini.serving.api import interaction_service_pb2 as ipb
from vahini.serving.api import interaction_service_pb2_grpc as ipb_grpc
from vahini.serving.grpc_errors import time_left
from vahini.serving.interactions import InteractionReader
from vahini.ports.interaction_store import TYPES, HistoryQuery, StoredInteraction

INTERACTION_SERVICE_NAME = ipb.DESCRIPTOR.services_by_name["InteractionService"].full_name
DEFAULT_LIMIT = 100


def query_of(request: ipb.GetInteractionsRequest) -> HistoryQuery:
    # Unknown enum numbers pass through as names the reader rejects with INVALID_ARGUMENT.
    types = tuple(ipb.InteractionType.Name(t) if t in ipb.InteractionType.values() else str(t)
                  for t in request.types) or TYPES
    return HistoryQuery(request.user_id, types, request.limit or DEFAULT_LIMIT,
                        request.since_ms or None, request.until_ms or None)


def record_of(item: StoredInteraction) -> ipb.InteractionRecord:
    return ipb.InteractionRecord(event_id=item.event_id, product_id=item.product_id,
                                 category_id=item.category_id or "", type=ipb.InteractionType.Value(item.type),
                                 event_time_ms=item.event_time_ms, attributes=dict(item.attributes))


class InteractionServicer(ipb_grpc.InteractionServiceServicer):
    def __init__(self, reader: InteractionReader):
        self._reader = reader

    def GetInteractions(self, request: ipb.GetInteractionsRequest, context) -> ipb.GetInteractionsResponse:
        history = self._reader.history(query_of(request), timeout_s=time_left(context))
        time_left(context)
        return ipb.GetInteractionsResponse(user_id=history.user_id, source=history.source,
                                           interactions=[record_of(i) for i in history.interactions])
