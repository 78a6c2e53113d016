"""InteractionService over gRPC and `vahini history`, as rankers and operators use them."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from vahini.serving.api import interaction_service_pb2 as ipb
from vahini.serving.api import interaction_service_pb2_grpc as ipb_grpc
from vahini.serving.server import start_server
from tests.conftest_backends import STACKS
from tests.processes_helpers import wait_for
from tests.streams.interaction_helpers import RunningInteractionWorker, interaction_settings, producer
from tests.streams.processes import settings_env


@pytest.fixture(params=STACKS)
def served(request, tmp_path, unique):
    settings = interaction_settings(request.param, request, tmp_path, unique)
    running = start_server(settings, port=0)
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    yield settings, ipb_grpc.InteractionServiceStub(channel), channel
    channel.close()
    running.stop(0)


def test_get_interactions_hot_during_the_session_cold_after_with_filters(served):
    settings, stub, channel = served
    t = int(time.time() * 1000) - 60_000
    p = producer(settings)
    p.session_event("u1", "s", "START", t)
    for i in range(4):
        p.interaction(f"c{i}", "u1", f"p{i}", "CLICK", t + i, category_id=f"cat{i % 2}", attributes={"pos": str(i)})
    p.interaction("o1", "u1", "p9", "ORDER", t + 10)
    p.flush()
    worker = RunningInteractionWorker(settings)
    request = ipb.GetInteractionsRequest(user_id="u1")
    wait_for(lambda: len(stub.GetInteractions(request).interactions) == 5, 30, "u1's interactions")
    got = stub.GetInteractions(request)
    assert got.source == "hot" and [r.event_id for r in got.interactions] == ["o1", "c3", "c2", "c1", "c0"]
    assert got.interactions[1] == ipb.InteractionRecord(event_id="c3", product_id="p3", category_id="cat1",
                                                        type=ipb.CLICK, event_time_ms=t + 3, attributes={"pos": "3"})
    clicks = stub.GetInteractions(ipb.GetInteractionsRequest(user_id="u1", types=[ipb.CLICK], limit=2,
                                                             since_ms=t + 1, until_ms=t + 3))
    assert [r.event_id for r in clicks.interactions] == ["c2", "c1"]
    p.session_event("u1", "s", "END", t + 20)
    p.flush()
    wait_for(lambda: stub.GetInteractions(request).source == "cold", 30, "the flush")
    assert [r.event_id for r in stub.GetInteractions(request).interactions] == ["o1", "c3", "c2", "c1", "c0"]
    health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(
        service="vahini.v1.InteractionService"))
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    worker.close()


@pytest.mark.parametrize("request_, detail", [
    (ipb.GetInteractionsRequest(), "user_id: required"),
    (ipb.GetInteractionsRequest(user_id="u", limit=5000), "limit: 5000 is outside 1..1000"),
    (ipb.GetInteractionsRequest(user_id="u", since_ms=10, until_ms=10), "since_ms 10 is not before until_ms 10"),
    (ipb.GetInteractionsRequest(user_id="u", types=[ipb.INTERACTION_TYPE_UNSPECIFIED]), "allowed: CLICK, ORDER"),
])
def test_bad_requests_are_invalid_argument_naming_the_field(served, request_, detail):
    _, stub, _ = served
    with pytest.raises(grpc.RpcError) as info:
        stub.GetInteractions(request_)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and detail in info.value.details()


def test_vahini_history_prints_json_lines_per_user(request, tmp_path, unique):
    settings = interaction_settings("embedded", request, tmp_path, unique)
    t = int(time.time() * 1000) - 60_000
    p = producer(settings)
    p.interaction("x1", "ann", "p1", "CLICK", t, category_id="c")
    p.interaction("x2", "ann", "p2", "WISHLIST", t + 1)
    p.session_event("ben", "s", "START", t)
    p.interaction("y1", "ben", "p3", "ORDER", t + 2)
    p.flush()
    worker = RunningInteractionWorker(settings)
    env = settings_env(settings)

    def history(*args) -> list[dict]:
        done = subprocess.run([sys.executable, "-m", "vahini.cli", "history", *args, "--json"], env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return [json.loads(line) for line in done.stdout.splitlines()]
    wait_for(lambda: [len(h["interactions"]) for h in history("ann", "ben")] == [2, 1], 30, "both users")
    ann, ben = history("ann", "ben")
    assert ann == {"user_id": "ann", "source": "cold", "interactions": [
        {"event_id": "x2", "product_id": "p2", "category_id": None, "type": "WISHLIST", "event_time_ms": t + 1},
        {"event_id": "x1", "product_id": "p1", "category_id": "c", "type": "CLICK", "event_time_ms": t}]}
    assert ben["source"] == "hot" and ben["interactions"][0]["event_id"] == "y1"
    assert [i["event_id"] for i in history("ann", "--type", "click")[0]["interactions"]] == ["x1"]
    worker.close()


@pytest.mark.real_service
def test_a_hung_hot_tier_is_bypassed_and_reads_come_from_the_cold_tier(request, tmp_path, unique):
    from vahini.serving.interactions import InteractionReader
    from tests.faults import PrivateRedis
    from vahini import wiring
    from vahini.ports.interaction_store import HistoryQuery, OpenSession, StoredInteraction

    redis = PrivateRedis()
    settings = interaction_settings("real", request, tmp_path, unique, hot_tier=redis.url)
    cold = wiring.cold_interactions(settings)
    item = StoredInteraction(f"{unique}-1", f"{unique}-u", "p", None, "CLICK", int(time.time() * 1000) - 1000, {})
    cold.write([item])
    writer = wiring.interaction_hot_tier(settings)
    writer.load(OpenSession(item.user_id, "s", 0, 0), [item])
    reader = InteractionReader(wiring.interaction_hot_tier(settings, timeout_s=settings.cache.timeout_ms / 1000),
                               wiring.cold_interactions(settings), settings)
    assert reader.history(HistoryQuery(item.user_id)).source == "hot"
    from prometheus_client import REGISTRY

    bypassed = lambda: REGISTRY.get_sample_value("vahini_cache_bypassed_total",  # noqa: E731
                                                 {"dependency": "interaction hot tier",
                                                  "operation": "interactions_read"}) or 0
    before = bypassed()
    redis.hang()
    try:
        sources = [reader.history(HistoryQuery(item.user_id)).source for _ in range(20)]
        assert sources == ["cold"] * 20
        # One cache timeout for the first call, then the breaker skips the hung tier: the
        # reads it counts as bypassed never waited on it.
        assert bypassed() - before >= 19
    finally:
        redis.resume()
    wait_for(lambda: reader.history(HistoryQuery(item.user_id)).source == "hot", 10, "the hot tier back in use")
    reader.close()
    writer.close()
    cold.close()
    redis.stop()


def test_sequence_features_are_fixed_length_padded_and_count_matches():
    from vahini.serving.interactions import count_matching, last_ids
    from vahini.ports.interaction_store import StoredInteraction

    history = [StoredInteraction(f"e{k}", "u", f"p{k}", f"c{k % 2}" if k != 3 else None, t, 100 - k, {})
               for k, t in enumerate(["CLICK", "ORDER", "CLICK", "CLICK", "WISHLIST"])]  # newest first
    assert last_ids(history, "product_id", 3) == ["p0", "p1", "p2"]
    assert last_ids(history, "product_id", 5, pad="<pad>", type_="CLICK") == ["p0", "p2", "p3", "<pad>", "<pad>"]
    assert last_ids(history, "category_id", 4, pad="-") == ["c0", "c1", "c0", "-"]  # a missing category pads too
    assert count_matching(history, "category_id", "c0", last=3, type_="CLICK") == 2
    assert count_matching(history, "category_id", "", last=5) == 0
    with pytest.raises(ValueError, match="field must be product_id or category_id"):
        last_ids(history, "event_id", 2)


@pytest.mark.real_service
def test_a_black_holed_cold_tier_costs_a_call_its_deadline_and_no_more(request, tmp_path, unique):
    from tests.faults import TcpProxy

    host, port = request.getfixturevalue("cassandra_endpoint").split(":")
    proxy = TcpProxy(host, int(port))
    keyspace = request.getfixturevalue("cassandra_keyspace")
    settings = interaction_settings("real", request, tmp_path, unique).model_copy(
        update={"feature_store": f"cassandra://127.0.0.1:{proxy.port}/{keyspace}"})
    running = start_server(settings, port=0)
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    stub = ipb_grpc.InteractionServiceStub(channel)
    assert stub.GetInteractions(ipb.GetInteractionsRequest(user_id=f"{unique}-nobody")).source == "cold"
    proxy.hang()  # connections stay open; Cassandra never answers
    try:
        from prometheus_client import REGISTRY

        ended = lambda: REGISTRY.get_sample_value("vahini_grpc_requests_total",  # noqa: E731
                                                  {"method": "GetInteractions", "code": "DEADLINE_EXCEEDED"}) or 0
        before = ended()
        with pytest.raises(grpc.RpcError) as info:
            stub.GetInteractions(ipb.GetInteractionsRequest(user_id=f"{unique}-nobody"), timeout=0.5)
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        # The server ended the call at its deadline too, while Cassandra still hung: its
        # handler did not wait for the store's own 10 s request timeout.
        wait_for(lambda: ended() == before + 1, 9, "the server to end the call")
    finally:
        proxy.resume()
        channel.close()
        running.stop(0)
