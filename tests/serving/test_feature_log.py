"""Feature logging (registry `log: {sample: ...}`): the sampled share of a model's
responses reaches the feature log as served, and logging never blocks or fails a
request, even with the event log hung."""

from __future__ import annotations

import time

import grpc
import numpy as np
import pytest
from prometheus_client import REGISTRY

from vahini import wiring
from vahini.codecs.avro import AvroCodec, SchemaCatalog
from vahini.serving.api import model_proxy_pb2 as mpb
from vahini.serving.api import model_proxy_pb2_grpc as mpb_grpc
from vahini.serving.feature_log import FeatureLogger, Served
from vahini.serving.model_proxy import FeatureMatrix
from vahini.serving.server import start_server
from tests.conftest_backends import STACKS, stack_settings
from tests.faults import TcpProxy
from tests.offline.helpers import with_logging
from tests.processes_helpers import wait_for

CODEC = AvroCodec(SchemaCatalog.default())


def logged(settings) -> list[dict]:
    """Every record of the feature log so far."""
    log = wiring.event_log(settings)
    topic = settings.topics.feature_log
    try:
        if not log.exists(topic):
            return []
        ends = log.end_offsets(topic)
        consumer = log.consumer("read-feature-log", [topic], {(topic, p): 0 for p in ends})
        records = []
        while any((consumer.position((topic, p)) or 0) < end for p, end in ends.items()):
            records += consumer.poll_batch(500, 0.5)
        consumer.close()
        return [CODEC.decode(r.value)[1] for r in records]
    finally:
        log.close()


def _request(stub, user: str) -> mpb.GetFeaturesResponse:
    return stub.GetFeatures(mpb.GetFeaturesRequest(model="home_ranker", context={
        "user_id": mpb.ContextIds(ids=[user]), "product_ids": mpb.ContextIds(ids=["p1", "p2"])}), timeout=5)


@pytest.mark.parametrize("stack", STACKS)
def test_logged_records_are_the_responses_as_served(request, tmp_path, unique, stack):
    settings = with_logging(stack_settings(stack, request, tmp_path, unique), tmp_path, unique)
    running = start_server(settings, port=0)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            replies = [_request(mpb_grpc.ModelProxyStub(channel), f"u{i}") for i in range(5)]
    finally:
        running.stop(0)
    records = {r["request_id"]: r for r in logged(settings)}
    assert sorted(records) == sorted(r.request_id for r in replies)
    for reply in replies:
        record = records[reply.request_id]
        assert record["model"] == "home_ranker" and record["version"] == reply.version
        assert record["matrix"] == reply.matrix and record["columns"] == list(reply.columns)
        assert record["row_ids"] == ["p1", "p2"] and record["rows_field"] == "product_ids"
        assert record["context"]["user_id"] == [record["context"]["user_id"][0]]
        assert record["dtypes"] == list(reply.dtypes) and record["degraded"] == reply.degraded
        assert abs(record["served_at_ms"] - time.time() * 1000) < 600_000  # a moment of this run, in ms


def test_only_the_sampled_share_is_logged(request, tmp_path, unique):
    settings = with_logging(stack_settings("embedded", request, tmp_path, unique), tmp_path, unique, sample=0.25)
    running = start_server(settings, port=0)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = mpb_grpc.ModelProxyStub(channel)
            for i in range(400):
                _request(stub, f"u{i}")
    finally:
        running.stop(0)
    assert 50 <= len(logged(settings)) <= 150  # 100 expected; outside these bounds: 1 run in ~10^7


def test_each_response_is_logged_when_its_draw_is_below_the_sample(request, tmp_path, unique):
    settings = stack_settings("embedded", request, tmp_path, unique)
    settings = settings.model_copy(update={"topics": settings.topics.model_copy(update={"feature_log": "fl"})})
    draws = iter([0.10, 0.90, 0.49, 0.50, 0.01])
    logger = FeatureLogger(wiring.event_log(settings), "fl", 2, capacity=100, draw=lambda: next(draws))
    for i in range(5):
        matrix = FeatureMatrix("m", 1, ["c"], ["float32"], ["r"], np.zeros((1, 1), "f4"),
                               log_sample=0.5, rows_field="rows", served_at_ms=1000 + i)
        logger.offer(Served(f"req-{i}", {"rows": ["r"]}, matrix))
    logger.close()
    assert [r["request_id"] for r in logged(settings)] == ["req-0", "req-2", "req-4"]


def _sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.mark.real_service
def test_a_hung_event_log_drops_and_counts_records_and_never_holds_a_request(request, tmp_path, unique,
                                                                            kafka_bootstrap):
    """The feature log's Kafka reached through a proxy that hangs: the log's thread waits
    on it, its queue fills, and requests go on being answered within their deadline."""
    host, port = kafka_bootstrap.rsplit(":", 1)
    proxy = TcpProxy(host, int(port))
    proxy.hang()
    settings = with_logging(stack_settings("embedded", request, tmp_path, unique), tmp_path, unique)
    settings = settings.model_copy(update={
        "event_log": f"kafka://127.0.0.1:{proxy.port}",
        "serving": settings.serving.model_copy(update={"feature_log_queue": 5})})
    dropped = _sample("vahini_feature_log_dropped_total", model="home_ranker", reason="queue_full")
    running = start_server(settings, port=0)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = mpb_grpc.ModelProxyStub(channel)
            replies = [_request(stub, f"u{i}") for i in range(60)]  # each within its 5 s deadline
        assert all(r.matrix for r in replies)
        # At most the queue (5) and the one record the thread holds were kept.
        assert _sample("vahini_feature_log_dropped_total", model="home_ranker", reason="queue_full") - dropped >= 54
        proxy.resume()
        wait_for(lambda: len(logged(settings.model_copy(update={"event_log": f"kafka://{kafka_bootstrap}"}))) >= 1,
                 60, "the kept records to reach the feature log once Kafka answers")
    finally:
        running.stop(0)
        proxy.cut()


@pytest.mark.real_service
def test_closing_with_the_event_log_hung_gives_up_after_its_timeout(request, tmp_path, unique, kafka_bootstrap):
    host, port = kafka_bootstrap.rsplit(":", 1)
    proxy = TcpProxy(host, int(port))
    proxy.hang()
    try:
        logger = FeatureLogger(wiring.event_log(stack_settings("embedded", request, tmp_path, unique).model_copy(
            update={"event_log": f"kafka://127.0.0.1:{proxy.port}"})), f"fl-{unique}", 2, capacity=3)
        matrix = FeatureMatrix("m", 1, ["c"], ["float32"], ["r"], np.zeros((1, 1), "f4"), log_sample=1.0)
        assert sum(logger.offer(Served(f"req-{i}", {"rows": ["r"]}, matrix)) for i in range(10)) >= 3
        logger.close(timeout_s=1.0)  # returns: a server stops on time with its log hung
    finally:
        proxy.cut()
