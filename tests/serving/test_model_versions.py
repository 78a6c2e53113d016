"""Versions of a model's graph on a running server: a new publish is picked up
without a restart, and without a failed or mixed request while it switches; a
request may pin an earlier version."""

from __future__ import annotations

import threading
import time

import grpc
import numpy as np
import pytest

from vahini.serving.api import model_proxy_pb2 as mpb
from vahini.serving.api import model_proxy_pb2_grpc as mpb_grpc
from vahini.serving.server import start_server
from tests.conftest_backends import STACKS, stack_settings
from tests.serving.test_model_scoring import publish_registry
from tests.serving.test_model_proxy import context

# Each version adds one more log1p column of the price: the width of the matrix
# tells which version built it, and its names must match that version.
EXTRA = "      - {name: v%d_price, from: product.price, transform: log1p}\n"


def version_edit(n: int):
    marker = "      - stats.embedding "
    return lambda text: text.replace(marker, "".join(EXTRA % v for v in range(2, n + 1)) + marker, 1)


@pytest.mark.parametrize("stack", STACKS)
def test_a_publish_swaps_versions_without_failed_or_mixed_requests_and_old_ones_stay_pinnable(
        stack, request, tmp_path, unique):
    settings = stack_settings(stack, request, tmp_path, unique)
    publish_registry(settings, tmp_path)
    running = start_server(settings, port=0)
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    proxy = mpb_grpc.ModelProxyStub(channel)
    seen: list[tuple[int, list[str], tuple]] = []
    errors: list[Exception] = []
    stop = threading.Event()

    def ask_all_the_time() -> None:
        while not stop.is_set():
            try:
                r = proxy.GetFeatures(mpb.GetFeaturesRequest(model="home_ranker", context=context("u1", ["p1"])),
                                      timeout=30)
                seen.append((r.version, list(r.columns), tuple(r.shape)))
            except grpc.RpcError as exc:
                errors.append(exc)

    asker = threading.Thread(target=ask_all_the_time)
    asker.start()
    try:
        for n in (2, 3, 4):
            time.sleep(0.3)
            publish_registry(settings, tmp_path, version_edit(n))
        deadline = time.monotonic() + 20
        while (not seen or seen[-1][0] != 4) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        asker.join()
    assert errors == []
    versions = [v for v, _, _ in seen]
    assert versions == sorted(versions) and versions[0] == 1 and versions[-1] == 4
    for version, columns, shape in seen:  # never a mix: each matrix is exactly its version's
        extra = [f"v{v}_price" for v in range(2, version + 1)]
        assert [c for c in columns if c.startswith("v") and c.endswith("_price")] == extra
        assert shape == (1, len(columns))

    pinned = proxy.GetFeatures(mpb.GetFeaturesRequest(model="home_ranker", version=2,
                                                      context=context("u1", ["p1", "p2"])), timeout=30)
    assert pinned.version == 2 and "v2_price" in pinned.columns and "v3_price" not in pinned.columns
    assert np.frombuffer(pinned.matrix, "<f4").size == 2 * len(pinned.columns)
    with pytest.raises(grpc.RpcError) as info:
        proxy.GetFeatures(mpb.GetFeaturesRequest(model="home_ranker", version=9, context=context("u1", ["p1"])),
                          timeout=30)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert "model 'home_ranker' has no version 9 (published: 1, 2, 3, 4)" in info.value.details()
    channel.close()
    running.stop(0)
