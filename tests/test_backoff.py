"""The shared retry backoff: capped, doubling, and jittered so that workers hit by the same
outage spread their retries."""

import random

from vahini.backoff import Backoff


def test_each_delay_is_between_half_and_all_of_its_doubling_capped_step():
    backoff = Backoff(0.1, 2.0, random.Random(1))
    delays = [backoff.next_s() for _ in range(10)]
    steps = [min(0.1 * 2 ** i, 2.0) for i in range(10)]
    assert all(step / 2 <= d <= step for d, step in zip(delays, steps))
    assert delays[-1] <= 2.0


def test_two_workers_failing_together_retry_apart():
    first = [Backoff(0.1, 30.0, random.Random(seed)).next_s() for seed in range(20)]
    assert len({round(d, 6) for d in first}) == 20
