"""What bounds a server's work: the caller's deadline (even on a hung store), a cap
on calls in flight, one registry snapshot per call, and one server per port."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import grpc
import pytest
from prometheus_client import REGISTRY

from vahini.serving.api import feature_service_pb2 as pb
from vahini.serving.api import feature_service_pb2_grpc as pb_grpc
from vahini.serving.server import start_server
from vahini.errors import BadSettings
from vahini.registry.model import Registry
from tests.conftest_backends import STACKS, stack_settings, with_sample_registry
from tests.processes_helpers import wait_for
from tests.services import free_port
from tests.streams.processes import settings_env


def retrieve(keys: list[str]) -> pb.RetrieveRequest:
    return pb.RetrieveRequest(entity="user", keys=keys, groups=[pb.GroupSelector(group="user_activity")])


def server_calls(code: str) -> float:
    return REGISTRY.get_sample_value("vahini_grpc_requests_total", {"method": "Retrieve", "code": code}) or 0


def server_seconds() -> float:
    return REGISTRY.get_sample_value("vahini_grpc_request_seconds_sum", {"method": "Retrieve"}) or 0


@pytest.fixture
def hung_store_server(request, tmp_path, unique):
    """A server whose Cassandra sits behind a proxy the test can hang."""
    from tests.faults import TcpProxy

    settings = with_sample_registry(stack_settings("real", request, tmp_path, unique))
    host, port = request.getfixturevalue("cassandra_endpoint").split(":")
    proxy = TcpProxy(host, int(port))
    keyspace = request.getfixturevalue("cassandra_keyspace")
    serving = settings.serving.model_copy(update={"max_in_flight": 3, "max_workers": 8})
    settings = settings.model_copy(update={"feature_store": f"cassandra://127.0.0.1:{proxy.port}/{keyspace}",
                                           "serving": serving})
    running = start_server(settings, port=0)
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    stub = pb_grpc.FeatureServiceStub(channel)
    stub.Retrieve(retrieve([f"warm{unique}"]), timeout=30)  # connected while the store answers
    yield stub, proxy, unique
    proxy.resume()
    channel.close()
    running.stop(0)


@pytest.mark.real_service
def test_a_hung_store_costs_a_call_its_deadline_and_not_more(hung_store_server):
    stub, proxy, u = hung_store_server
    proxy.hang()

    def server_time_of_a_call(deadline_s: float, key: str) -> float:
        """The seconds the server spent on one call (its own histogram), once it ended it."""
        before_calls, before_seconds = server_calls("DEADLINE_EXCEEDED"), server_seconds()
        with pytest.raises(grpc.RpcError) as info:
            stub.Retrieve(retrieve([key]), timeout=deadline_s)
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        # The server, not only the client, gave up.
        wait_for(lambda: server_calls("DEADLINE_EXCEEDED") == before_calls + 1, 10, "the server to end the call")
        return server_seconds() - before_seconds
    short, long = server_time_of_a_call(0.3, f"slow{u}"), server_time_of_a_call(1.2, f"slower{u}")
    # The handler ends at the call's deadline, so its time follows the deadline (0.25x here),
    # whatever this machine's speed: a ratio, not a bound in seconds.
    assert short < 0.5 * long, f"{short:.3f} s at a 0.3 s deadline, {long:.3f} s at 1.2 s"


@pytest.mark.real_service
def test_calls_beyond_the_in_flight_limit_are_refused_at_once(hung_store_server):
    stub, proxy, u = hung_store_server
    proxy.hang()
    codes: list = []

    def slow_call(i: int) -> None:
        try:
            stub.Retrieve(retrieve([f"held{i}{u}"]), timeout=4)
        except grpc.RpcError as exc:
            codes.append(exc.code())

    held = [threading.Thread(target=slow_call, args=(i,)) for i in range(3)]  # max_in_flight = 3
    for thread in held:
        thread.start()
    time.sleep(0.5)
    with pytest.raises(grpc.RpcError) as info:
        stub.Retrieve(retrieve([f"extra{u}"]), timeout=4)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # grpc's own limit: before any handler
    # Refused while the three held calls were still in flight: had it queued, it would
    # have ended with them, at their deadline.
    assert all(thread.is_alive() for thread in held), "the extra call was answered only after the held ones"
    for thread in held:
        thread.join(10)
    assert codes == [grpc.StatusCode.DEADLINE_EXCEEDED] * 3


@pytest.mark.parametrize("stack", STACKS)
def test_one_call_reads_one_registry_snapshot(stack, request, tmp_path, unique):
    from vahini.serving.retrieval import FeatureReader
    from vahini.serving.server import FeatureServicer
    from vahini import wiring
    from vahini.registry.publish import RegistryFollower

    settings = with_sample_registry(stack_settings(stack, request, tmp_path, unique))
    follower = RegistryFollower(wiring.config_store(settings))
    published = follower.current
    snapshots = iter([published, Registry.empty(), Registry.empty()])  # a hot reload right after the first read
    registry = lambda: next(snapshots)  # noqa: E731
    store = wiring.feature_store(settings)
    cache = wiring.feature_cache(settings, store)
    servicer = FeatureServicer(FeatureReader(store, cache, registry), store, cache, registry, settings)

    class Context:
        def time_remaining(self):
            return None

    response = servicer.Retrieve(retrieve([f"k{unique}"]), Context())
    assert response.groups[0].schema_version == published.groups["user_activity"].version
    follower.close()
    cache.close()
    store.close()


def test_a_second_server_on_a_port_in_use_is_refused(tmp_path, unique):
    settings = with_sample_registry(stack_settings("embedded", None, tmp_path, unique))
    port = free_port()
    first = start_server(settings, port=port)
    try:
        with pytest.raises(BadSettings, match=f"cannot listen on 127.0.0.1:{port}: the port is in use"):
            start_server(settings, port=port)
        result = subprocess.run([sys.executable, "-m", "vahini.cli", "serve", "--port", str(port)],
                                env=settings_env(settings), capture_output=True, text=True, timeout=60)
        assert result.returncode == 1, result.stderr
        assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "Traceback" not in result.stderr
    finally:
        first.stop(0)
