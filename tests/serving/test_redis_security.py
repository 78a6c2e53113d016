"""Redis with security on: an ACL user with a password, over TLS, for the feature
cache and the interaction hot tier alike; wrong credentials and a plaintext
client are refused with a clear error that never shows the password."""

from __future__ import annotations

import time

import grpc
import pytest
import redis

from vahini.serving.api import feature_service_pb2 as pb
from vahini.serving.api import feature_service_pb2_grpc as pb_grpc
from vahini.serving.server import start_server
from tests.certs import make_ca, make_cert
from tests.conftest_backends import stack_settings, with_sample_registry
from tests.faults import PrivateRedis
from vahini import wiring
from vahini.errors import StoreUnavailable
from vahini.ports.interaction_store import HistoryQuery, OpenSession, StoredInteraction
from vahini.settings import RedisSettings

PASSWORD = "redis-acl-password-7f3a"
ACL = ("--user", "default", "off", "--user", "vahini", "on", f">{PASSWORD}", "~*", "&*", "+@all")


@pytest.fixture
def secured_redis(tmp_path):
    ca = make_ca(tmp_path / "pki", "redis-ca")
    server = make_cert(ca, tmp_path / "pki", "redis")
    instance = PrivateRedis(tls=(server.cert, server.key, ca.cert), extra=ACL)
    password_file = tmp_path / "redis-password"
    password_file.write_text(PASSWORD + "\n")
    yield instance, RedisSettings(username="vahini", password_file=password_file, ca_file=ca.cert), ca
    instance.stop()


@pytest.mark.real_service
def test_cache_and_hot_tier_use_an_acl_user_over_tls(request, tmp_path, unique, secured_redis, capsys):
    instance, credentials, ca = secured_redis
    base = stack_settings("embedded", request, tmp_path, unique)
    settings = with_sample_registry(base.model_copy(update={
        "feature_cache": instance.url, "redis": credentials,
        "interactions": base.interactions.model_copy(update={"hot_tier": instance.url})}))
    running = start_server(settings, port=0)
    try:
        stub = pb_grpc.FeatureServiceStub(grpc.insecure_channel(f"127.0.0.1:{running.port}"))
        stub.Persist(pb.PersistRequest(updates=[pb.FeatureUpdate(
            entity="user", keys={"user_id": "u1"}, group="user_activity",
            values={"clicks_1d": pb.Value(int_value=4)}, event_time_ms=int(time.time() * 1000))]), timeout=10)
        for _ in range(2):  # the first read fills the cache over TLS, the second is served from it
            reply = stub.Retrieve(pb.RetrieveRequest(entity="user", keys=["u1"], groups=[
                pb.GroupSelector(group="user_activity")]), timeout=10)
        assert reply.groups[0].features[0].name == "clicks_1d"
    finally:
        running.stop(0)
    admin = redis.Redis.from_url(instance.url, username="vahini", password=PASSWORD, ssl_ca_certs=str(ca.cert))
    assert admin.keys(f"{settings.cache.namespace}:*:user:user_activity:u1"), "the cache entry was not written"

    tier = wiring.interaction_hot_tier(settings)
    now = int(time.time() * 1000)
    tier.load(OpenSession("u9", "s1", 0, now), [StoredInteraction("e1", "u9", "p1", "c1", "CLICK", now)])
    assert [i.event_id for i in tier.read(HistoryQuery("u9"))] == ["e1"]
    assert admin.exists(f"{settings.interactions.namespace}:{{u9}}:s")
    tier.close()

    wrong = settings.model_copy(update={"redis": RedisSettings(username="vahini", password="not-it",
                                                               ca_file=ca.cert)})
    with pytest.raises(StoreUnavailable, match="invalid username-password pair") as info:
        wiring.interaction_hot_tier(wrong).generation()
    assert "not-it" not in str(info.value)
    plaintext = settings.model_copy(update={"interactions": settings.interactions.model_copy(
        update={"hot_tier": instance.url.replace("rediss://", "redis://")})})
    with pytest.raises(StoreUnavailable, match="Connection reset by peer"):  # refused, not left to time out
        wiring.interaction_hot_tier(plaintext, timeout_s=5.0).generation()
    printed = capsys.readouterr()
    assert PASSWORD not in printed.out + printed.err + repr(settings) + str(settings.model_dump())
