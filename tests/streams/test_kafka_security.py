"""Kafka with security on: SCRAM-SHA-512 over TLS (the broker's SASL_SSL listener)
and ACLs. The worker reads its topics and writes only the dead-letter topic; a
producer with wrong credentials gets a clear error and writes nothing; a worker
whose rights are revoked stops, says why, and resumes when they are restored."""

from __future__ import annotations

import threading
import time

import pytest
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType, AdminClient,
                                   ResourcePatternType, ResourceType, ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialDeletion, UserScramCredentialUpsertion)

from vahini.streams.app import Backends, build_worker
from tests.conftest_backends import stack_settings, with_sample_registry
from tests.processes_helpers import wait_for
from tests.streams.helpers import CODEC, send_raw, stored_clicks, update
from vahini import wiring
from vahini.codecs.avro import FEATURE_UPDATE
from vahini.errors import NotAllowed
from vahini.producer import EventProducer

pytestmark = pytest.mark.real_service


class Principals:
    """SCRAM users and their ACLs, managed over the plaintext listener (a super user)."""

    def __init__(self, plaintext: str):
        self.admin = AdminClient({"bootstrap.servers": plaintext})

    def user(self, name: str, password: str) -> None:
        info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096)
        for future in self.admin.alter_user_scram_credentials(
                [UserScramCredentialUpsertion(name, info, password.encode())]).values():
            future.result(timeout=30)

    def forget(self, name: str) -> None:
        """Delete the user's SCRAM credentials."""
        for future in self.admin.alter_user_scram_credentials(
                [UserScramCredentialDeletion(name, ScramMechanism.SCRAM_SHA_512)]).values():
            future.result(timeout=30)

    def _bindings(self, user: str, grants) -> list[AclBinding]:
        return [AclBinding(kind, name, ResourcePatternType.LITERAL, f"User:{user}", "*", op, AclPermissionType.ALLOW)
                for kind, name, ops in grants for op in ops]

    def allow(self, user: str, grants) -> None:
        for future in self.admin.create_acls(self._bindings(user, grants)).values():
            future.result(timeout=30)
        time.sleep(1)  # ACL changes reach the broker's authorizer through the metadata log

    def revoke(self, user: str, grants) -> None:
        filters = [AclBindingFilter(b.restype, b.name, b.resource_pattern_type, b.principal, b.host, b.operation,
                                    b.permission_type) for b in self._bindings(user, grants)]
        for future in self.admin.delete_acls(filters).values():
            future.result(timeout=30)


def secured(settings, bootstrap: str, ca: str, user: str, password: str):
    """Validated as settings from the environment or a file are, so secrets are hidden as they would be."""
    return type(settings).model_validate({**settings.model_dump(), "event_log": f"kafka://{bootstrap}", "kafka": {
        "security.protocol": "SASL_SSL", "sasl.mechanisms": "SCRAM-SHA-512", "sasl.username": user,
        "sasl.password": password, "ssl.ca.location": ca}})


@pytest.fixture
def secure_setup(request, tmp_path, unique, kafka_secure):
    bootstrap, ca = kafka_secure
    plain = with_sample_registry(stack_settings("real", request, tmp_path, unique))
    topics = plain.topics
    log = wiring.event_log(plain)
    for topic in (topics.feature_updates, topics.dead_letter):
        log.create_topic(topic, topics.partitions)
    log.close()
    principals = Principals(request.getfixturevalue("kafka_bootstrap"))
    worker, producer = f"worker-{unique}", f"producer-{unique}"
    principals.user(worker, "worker-pw-" + unique)
    principals.user(producer, "producer-pw-" + unique)
    worker_rights = [(ResourceType.TOPIC, topics.feature_updates, [AclOperation.READ, AclOperation.DESCRIBE]),
                     (ResourceType.GROUP, plain.ingest.group, [AclOperation.READ]),
                     (ResourceType.TOPIC, topics.dead_letter, [AclOperation.WRITE, AclOperation.DESCRIBE])]
    principals.allow(worker, worker_rights)
    principals.allow(producer, [(ResourceType.TOPIC, topics.feature_updates, [AclOperation.WRITE,
                                                                              AclOperation.DESCRIBE])])
    yield {"plain": plain, "principals": principals, "worker_rights": worker_rights,
           "worker": secured(plain, bootstrap, ca, worker, "worker-pw-" + unique),
           "producer": secured(plain, bootstrap, ca, producer, "producer-pw-" + unique),
           "as": lambda user, pw: secured(plain, bootstrap, ca, user, pw)}


def run_worker(settings):
    backends = Backends.open(settings)
    worker = build_worker(settings, backends)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()

    def finish():
        stop.set()
        thread.join(30)
        worker.close()
        backends.close()
    return finish


def committed_total(settings) -> int:
    log = wiring.event_log(settings)
    try:
        return sum(log.committed(settings.ingest.group, settings.topics.feature_updates).values())
    finally:
        log.close()


def end_total(settings, topic: str) -> int:
    log = wiring.event_log(settings)
    try:
        return sum(log.end_offsets(topic).values())
    finally:
        log.close()


def test_a_worker_and_a_producer_run_over_sasl_ssl_within_their_acls(secure_setup, unique, capsys, tmp_path):
    s = secure_setup
    plain, topics = s["plain"], s["plain"].topics
    now = int(time.time() * 1000)
    producer = EventProducer.from_settings(s["producer"], "secure-test")
    for i in range(20):
        producer.feature_update("user", {"user_id": f"su{i}-{unique}"}, "user_activity", {"clicks_1d": i}, now)
    producer.flush()
    producer.close()
    send_raw(s["producer"], [b"\x00not avro"])  # undecodable: the worker dead-letters it, over its own rights

    finish = run_worker(s["worker"])
    try:
        wait_for(lambda: committed_total(plain) >= 21, 60, "the worker to commit every event")
    finally:
        finish()
    assert stored_clicks(plain, [f"su{i}-{unique}" for i in range(20)]) == {f"su{i}-{unique}": i for i in range(20)}
    assert end_total(plain, topics.dead_letter) == 1

    # the worker may write only the dead-letter topic
    with pytest.raises(NotAllowed, match="Topic authorization failed"):
        send_raw(s["worker"], [CODEC.encode(FEATURE_UPDATE, update("x", 1, now))])
    # wrong credentials: a clear error, and nothing written
    before = end_total(plain, topics.feature_updates)
    with pytest.raises(NotAllowed, match="Authentication failed"):  # refused, not left to time out
        send_raw(s["as"](f"producer-{unique}", "wrong-password"), [CODEC.encode(FEATURE_UPDATE, update("y", 1, now))])
    assert end_total(plain, topics.feature_updates) == before
    # the password from a file, as a container platform mounts it
    password_file = tmp_path / "kafka-password"
    password_file.write_text(f"producer-pw-{unique}\n")
    from_file = s["producer"].model_copy(update={
        "kafka": {k: v for k, v in s["producer"].kafka.items() if k != "sasl.password"},
        "kafka_files": {"sasl.password": password_file}})
    send_raw(from_file, [CODEC.encode(FEATURE_UPDATE, update(f"f-{unique}", 3, now))])
    assert end_total(plain, topics.feature_updates) == before + 1
    printed = capsys.readouterr()
    assert f"worker-pw-{unique}" not in printed.out + printed.err + repr(s["worker"])


def test_a_worker_whose_rights_or_credentials_are_revoked_stops_says_why_and_resumes_without_loss(secure_setup, unique, capsys):
    s = secure_setup
    plain = s["plain"]
    now = int(time.time() * 1000)
    producer = EventProducer.from_settings(s["producer"], "secure-test")
    send = lambda lo, hi: [producer.feature_update(  # noqa: E731
        "user", {"user_id": f"rv{i}-{unique}"}, "user_activity", {"clicks_1d": i}, now) for i in range(lo, hi)]
    finish = run_worker(s["worker"])
    try:
        send(0, 10)
        producer.flush()
        wait_for(lambda: committed_total(plain) >= 10, 60, "the first events to be committed")
        s["principals"].revoke(f"worker-{unique}", s["worker_rights"])
        time.sleep(2)
        send(10, 20)
        producer.flush()
        time.sleep(5)
        assert committed_total(plain) == 10  # no rights, no progress: nothing is skipped either
        said = capsys.readouterr()
        said = said.out + said.err  # logs go to stdout, or to stderr as JSON once a test configured that
        assert "kafka_consumer_refused" in said and "authorization failed" in said  # it says why
        s["principals"].allow(f"worker-{unique}", s["worker_rights"])
        wait_for(lambda: committed_total(plain) >= 20, 90, "the worker to resume once its rights are back")

        s["principals"].forget(f"worker-{unique}")  # now its credentials: open connections re-authenticate
        time.sleep(7)  # past the listener's connections.max.reauth.ms
        send(20, 30)
        producer.flush()
        time.sleep(5)
        assert committed_total(plain) == 20
        said = capsys.readouterr()
        said = said.out + said.err
        assert "kafka_consumer_refused" in said and "Authentication failed" in said  # it says why
        s["principals"].user(f"worker-{unique}", "worker-pw-" + unique)
        wait_for(lambda: committed_total(plain) >= 30, 120, "the worker to resume once its credentials are back")
        # its dead-letter producer, refused while the rights were gone, was replaced and works again
        send_raw(s["producer"], [b"\x00junk after the outage"])
        wait_for(lambda: committed_total(plain) >= 31, 120, "the bad event to be dead-lettered and committed")
        assert end_total(plain, plain.topics.dead_letter) == 1
    finally:
        finish()
        producer.close()
    assert stored_clicks(plain, [f"rv{i}-{unique}" for i in range(30)]) == {f"rv{i}-{unique}": i for i in range(30)}
