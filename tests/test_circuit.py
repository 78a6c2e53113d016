"""Each circuit breaker reports under its own dependency label: one closing must not
read as the other closing too."""

import threading

from prometheus_client import REGISTRY

from vahini.circuit import CircuitBreaker, CircuitOpen
from vahini.errors import StoreUnavailable


def gauge(dependency: str) -> float | None:
    return REGISTRY.get_sample_value("vahini_cache_circuit_open", {"dependency": dependency})


def test_two_breakers_open_and_close_under_their_own_labels():
    healthy = {"a": threading.Event(), "b": threading.Event()}

    def probe(name):
        def check():
            if not healthy[name].is_set():
                raise StoreUnavailable(f"{name} still hung")
        return check
    a = CircuitBreaker("test dependency a", probe("a"), probe_interval_s=0.01)
    b = CircuitBreaker("test dependency b", probe("b"), probe_interval_s=0.01)
    try:
        a.trip("hung")
        b.trip("hung")
        assert gauge("test dependency a") == gauge("test dependency b") == 1
        try:
            b.call("read", lambda: None)
            raise AssertionError("an open breaker let a call through")
        except CircuitOpen:
            pass
        assert REGISTRY.get_sample_value("vahini_cache_bypassed_total",
                                         {"dependency": "test dependency b", "operation": "read"}) == 1
        healthy["a"].set()
        for _ in range(500):
            if not a.is_open:
                break
            threading.Event().wait(0.01)
        assert gauge("test dependency a") == 0 and not a.is_open
        assert gauge("test dependency b") == 1 and b.is_open
    finally:
        a.close()
        b.close()
