"""The gRPC FeatureService end to end, on the embedded stack and on Cassandra + Redis + ZooKeeper."""

import time

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from vahini.serving.api import feature_service_pb2 as pb
from vahini.serving.api import feature_service_pb2_grpc as pb_grpc
from vahini.serving.convert import array_of
from vahini.serving.server import SERVICE_NAME, start_server
from vahini.settings import ServingSettings
from tests.conftest_backends import STACKS, stack_settings, with_sample_registry

PRESENT, MISSING, EXPIRED = 0, 1, 2
DAY_MS = 86_400_000


@pytest.fixture(params=STACKS)
def stack(request, tmp_path, unique):
    settings = with_sample_registry(stack_settings(request.param, request, tmp_path, unique))
    settings = settings.model_copy(update={"serving": ServingSettings(max_keys_per_request=50)})
    running = start_server(settings, port=0)
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    yield pb_grpc.FeatureServiceStub(channel), channel, settings, unique
    channel.close()
    running.stop(0)


def activity(user, clicks, event_time_ms, **more):
    values = {"clicks_1d": pb.Value(int_value=clicks), **more}
    return pb.FeatureUpdate(entity="user", keys={"user_id": user}, group="user_activity", values=values,
                            event_time_ms=event_time_ms)


def code_of(call, *args, **kwargs) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call(*args, **kwargs)
    return info.value.code(), info.value.details()


def test_persisted_features_come_back_as_numpy_columns_with_statuses(stack):
    stub, _, _, u = stack
    now = int(time.time() * 1000)
    profile = pb.FeatureUpdate(entity="user", keys={"user_id": f"a{u}"}, group="user_profile", event_time_ms=now,
                               values={"city": pb.Value(string_value="Pune"),
                                       "embedding": pb.Value(vector_value=pb.FloatVector(values=[0.5] * 16))})
    reply = stub.Persist(pb.PersistRequest(updates=[activity(f"a{u}", 7, now), profile]))
    assert reply.rows_written == 2
    response = stub.Retrieve(pb.RetrieveRequest(entity="user", keys=[f"a{u}", f"nobody{u}"], groups=[
        pb.GroupSelector(group="user_activity", features=["clicks_1d", "orders_7d"]),
        pb.GroupSelector(group="user_profile")]))
    act, prof = response.groups
    clicks, orders = act.features
    assert array_of(clicks.tensor).tolist() == [7, 0] and clicks.tensor.dtype == "<i4"
    assert np.frombuffer(clicks.status, np.int8).tolist() == [PRESENT, MISSING]
    assert np.frombuffer(orders.status, np.int8).tolist() == [MISSING, MISSING]
    assert array_of(act.event_time_ms).tolist() == [now, 0]
    by_name = {c.name: c for c in prof.features}
    assert list(by_name["city"].strings.values) == ["Pune", "unknown"]
    embedding = array_of(by_name["embedding"].tensor)
    assert embedding.shape == (2, 16) and embedding.dtype == np.float32
    assert embedding[0].tolist() == [0.5] * 16 and embedding[1].tolist() == [0.0] * 16


def test_persist_keeps_the_newest_event_time(stack):
    stub, _, _, u = stack
    now = int(time.time() * 1000)
    stub.Persist(pb.PersistRequest(updates=[activity(f"b{u}", 2, now)]))
    stub.Persist(pb.PersistRequest(updates=[activity(f"b{u}", 1, now - 1000)]))
    stub.Persist(pb.PersistRequest(updates=[activity(f"c{u}", 5, now - 5), activity(f"c{u}", 6, now - 10)]))
    response = stub.Retrieve(pb.RetrieveRequest(entity="user", keys=[f"b{u}", f"c{u}"],
                                                groups=[pb.GroupSelector(group="user_activity")]))
    assert array_of(response.groups[0].features[0].tensor).tolist() == [2, 5]


def test_ttl_runs_from_event_time_and_rows_expired_on_arrival_are_counted_not_written(stack):
    from prometheus_client import REGISTRY

    stub, _, _, u = stack
    expired = lambda: REGISTRY.get_sample_value(  # noqa: E731
        "vahini_rows_expired_on_arrival_total", {"group": "user_activity"}) or 0
    before = expired()
    now = int(time.time() * 1000)  # user_activity has ttl_s of 7 days
    reply = stub.Persist(pb.PersistRequest(updates=[activity(f"old{u}", 9, now - 8 * DAY_MS),
                                                    activity(f"edge{u}", 4, now - 7 * DAY_MS + 1500)]))
    assert reply.rows_written == 1 and expired() == before + 1
    request = pb.RetrieveRequest(entity="user", keys=[f"old{u}", f"edge{u}"],
                                 groups=[pb.GroupSelector(group="user_activity")])
    clicks = stub.Retrieve(request).groups[0].features[0]
    assert np.frombuffer(clicks.status, np.int8).tolist() == [MISSING, PRESENT]
    assert array_of(clicks.tensor).tolist() == [0, 4]
    time.sleep(2.0)  # the backfilled row had 1.5 s left: neither the store nor the cache may still serve it
    clicks = stub.Retrieve(request).groups[0].features[0]
    assert np.frombuffer(clicks.status, np.int8).tolist()[1] in (MISSING, EXPIRED)
    assert array_of(clicks.tensor).tolist() == [0, 0]


def test_a_persist_invalidates_a_cached_miss(stack):
    stub, _, _, u = stack
    request = pb.RetrieveRequest(entity="user", keys=[f"late{u}"], groups=[pb.GroupSelector(group="user_profile")])
    first = stub.Retrieve(request)  # caches the miss (negative caching)
    assert np.frombuffer(first.groups[0].features[0].status, np.int8).tolist() == [MISSING]
    stub.Persist(pb.PersistRequest(updates=[pb.FeatureUpdate(
        entity="user", keys={"user_id": f"late{u}"}, group="user_profile",
        values={"account_age_days": pb.Value(int_value=3)}, event_time_ms=int(time.time() * 1000))]))
    second = stub.Retrieve(request)
    assert array_of(second.groups[0].features[0].tensor).tolist() == [3]


@pytest.mark.parametrize("request_, code, detail", [
    (pb.RetrieveRequest(keys=["u"], groups=[pb.GroupSelector(group="user_profile")]),
     grpc.StatusCode.INVALID_ARGUMENT, "entity: required"),
    (pb.RetrieveRequest(entity="user", groups=[pb.GroupSelector(group="user_profile")]),
     grpc.StatusCode.INVALID_ARGUMENT, "keys: at least one key"),
    (pb.RetrieveRequest(entity="user", keys=["u", ""], groups=[pb.GroupSelector(group="user_profile")]),
     grpc.StatusCode.INVALID_ARGUMENT, "keys[1]: empty key"),
    (pb.RetrieveRequest(entity="user", keys=["u"]), grpc.StatusCode.INVALID_ARGUMENT, "groups: at least one"),
    (pb.RetrieveRequest(entity="shop", keys=["u"], groups=[pb.GroupSelector(group="user_profile")]),
     grpc.StatusCode.NOT_FOUND, "unknown entity 'shop'"),
    (pb.RetrieveRequest(entity="user", keys=["u"], groups=[pb.GroupSelector(group="user_profil")]),
     grpc.StatusCode.NOT_FOUND, "unknown feature group 'user_profil'"),
    (pb.RetrieveRequest(entity="user", keys=["u"], groups=[pb.GroupSelector(group="product_core")]),
     grpc.StatusCode.NOT_FOUND, "belongs to entity 'product'"),
    (pb.RetrieveRequest(entity="user", keys=["u"], groups=[pb.GroupSelector(group="user_profile",
                                                                             features=["height"])]),
     grpc.StatusCode.NOT_FOUND, "has no feature 'height'"),
    (pb.RetrieveRequest(entity="user", keys=[f"k{i}" for i in range(51)],
                        groups=[pb.GroupSelector(group="user_profile")]),
     grpc.StatusCode.RESOURCE_EXHAUSTED, "51 keys exceed the limit of 50"),
    (pb.RetrieveRequest(entity="user_category", keys=["u1|c1", "u1"],
                        groups=[pb.GroupSelector(group="user_category_affinity")]),
     grpc.StatusCode.INVALID_ARGUMENT, "key 'u1' of entity 'user_category' has 1 part(s); it needs 2: "
                                       "user_id|category_id"),
    (pb.RetrieveRequest(entity="user_category", keys=["u1|c1|x"],
                        groups=[pb.GroupSelector(group="user_category_affinity")]),
     grpc.StatusCode.INVALID_ARGUMENT, "key 'u1|c1|x' of entity 'user_category' has 3 part(s)"),
    (pb.RetrieveRequest(entity="user", keys=["u1|c1"], groups=[pb.GroupSelector(group="user_profile")]),
     grpc.StatusCode.INVALID_ARGUMENT, "key 'u1|c1' of entity 'user' has 2 part(s); it needs 1: user_id"),
], ids=["no-entity", "no-keys", "empty-key", "no-groups", "unknown-entity", "unknown-group", "wrong-entity",
        "unknown-feature", "too-many-keys", "too-few-key-parts", "too-many-key-parts", "separator-in-key"])
def test_bad_retrieve_requests_get_precise_status_codes(stack, request_, code, detail):
    from prometheus_client import REGISTRY

    def counted():
        return REGISTRY.get_sample_value("vahini_grpc_requests_total", {"method": "Retrieve", "code": code.name}) or 0

    before = counted()
    got_code, got_detail = code_of(stack[0].Retrieve, request_)
    assert got_code == code and detail in got_detail
    assert counted() == before + 1


def test_bad_persist_requests_name_the_update_and_write_nothing(stack):
    stub, _, _, u = stack
    now = int(time.time() * 1000)
    bad = pb.FeatureUpdate(entity="user", keys={"user_id": f"p{u}"}, group="user_activity",
                           values={"clicks_1d": pb.Value(string_value="many")}, event_time_ms=now)
    code, detail = code_of(stub.Persist, pb.PersistRequest(updates=[activity(f"p{u}", 1, now), bad]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "updates[1]" in detail and "clicks_1d" in detail
    huge = pb.FeatureUpdate(entity="user", keys={"user_id": f"p{u}"}, group="user_profile",
                            values={"city": pb.Value(string_value="c" * 5_000_000)}, event_time_ms=now)
    code, detail = code_of(stub.Persist, pb.PersistRequest(updates=[huge]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "feature 'city' is 5,000,000 bytes" in detail
    unknown = pb.FeatureUpdate(entity="user", keys={"user_id": "x"}, group="nope", event_time_ms=now)
    assert code_of(stub.Persist, pb.PersistRequest(updates=[unknown]))[0] == grpc.StatusCode.NOT_FOUND
    response = stub.Retrieve(pb.RetrieveRequest(entity="user", keys=[f"p{u}"],
                                                groups=[pb.GroupSelector(group="user_activity")]))
    assert np.frombuffer(response.groups[0].features[0].status, np.int8).tolist() == [MISSING]


class _ExpiredContext:
    """Stands in for the gRPC runtime's call context: a deadline that has already passed."""

    def time_remaining(self):
        return -0.001


def test_the_server_stops_work_for_a_caller_whose_deadline_passed(tmp_path, unique):
    from vahini.serving.grpc_errors import BadRequest
    from vahini.serving.retrieval import FeatureReader
    from vahini.serving.server import FeatureServicer
    from vahini import wiring
    from vahini.registry.publish import RegistryFollower

    settings = with_sample_registry(stack_settings("embedded", None, tmp_path, unique))
    store = wiring.feature_store(settings)
    cache = wiring.feature_cache(settings, store)
    follower = RegistryFollower(wiring.config_store(settings))
    registry = lambda: follower.current  # noqa: E731
    servicer = FeatureServicer(FeatureReader(store, cache, registry), store, cache, registry, settings)
    update = activity("late-writer", 1, int(time.time() * 1000))
    for call, request in ((servicer.Persist, pb.PersistRequest(updates=[update])),
                          (servicer.Retrieve, pb.RetrieveRequest(entity="user", keys=["k"],
                                                                 groups=[pb.GroupSelector(group="user_profile")]))):
        with pytest.raises(BadRequest) as info:
            call(request, _ExpiredContext())
        assert info.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert store.read("user", ["late-writer"], ["user_activity"]) == {}  # the late Persist wrote nothing
    follower.close()


def test_health_and_reflection_answer(stack):
    _, channel, _, _ = stack
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", SERVICE_NAME):
        assert health.Check(health_pb2.HealthCheckRequest(service=service)).status == \
            health_pb2.HealthCheckResponse.SERVING
    db = ProtoReflectionDescriptorDatabase(channel)
    assert SERVICE_NAME in db.get_services()
    methods = db.FindFileContainingSymbol(SERVICE_NAME).service[0].method
    assert {m.name for m in methods} == {"Retrieve", "Persist", "Search"}


@pytest.mark.real_service
def test_store_outage_is_unavailable(request, tmp_path, unique):
    from tests.faults import TcpProxy

    settings = with_sample_registry(stack_settings("real", request, tmp_path, unique))
    host, port = request.getfixturevalue("cassandra_endpoint").split(":")
    proxy = TcpProxy(host, int(port))
    keyspace = request.getfixturevalue("cassandra_keyspace")
    settings = settings.model_copy(update={"feature_store": f"cassandra://127.0.0.1:{proxy.port}/{keyspace}"})
    running = start_server(settings, port=0)
    stub = pb_grpc.FeatureServiceStub(grpc.insecure_channel(f"127.0.0.1:{running.port}"))
    request_ = pb.RetrieveRequest(entity="user", keys=[f"z{unique}"],
                                  groups=[pb.GroupSelector(group="user_activity")])
    stub.Retrieve(request_)  # works while the store is reachable
    proxy.cut()
    request_.keys[:] = [f"y{unique}"]  # not cached: must go to the store
    code, detail = code_of(stub.Retrieve, request_, timeout=30)
    running.stop(0)
    assert code == grpc.StatusCode.UNAVAILABLE, detail
