"""Contract of the VectorIndexStore port, on SQLite + usearch and on Cassandra 5 (SAI, ANN OF)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from vahini.ports.vector_index import IndexCells, scores
from vahini.registry.model import Entity, Feature, FeatureGroup, Registry, VectorIndex

DIM = 8


def registry_with(name: str, metric: str = "cosine", ttl_s: int = 0) -> Registry:
    stats = FeatureGroup("product_stats", "product", 1, ttl_s, (Feature("ctr", "float32", 0.0),
                                                                 Feature("embedding", "vector", (0.0,) * DIM, DIM)))
    core = FeatureGroup("product_core", "product", 1, 0, (Feature("in_stock", "bool", True),
                                                          Feature("category_id", "string", ""),
                                                          Feature("rank", "int", 0)))
    index = VectorIndex(name, "product_stats", "embedding", metric,
                        ("product_core.in_stock", "product_core.category_id", "product_core.rank"))
    return Registry({"product": Entity("product", ("product_id",))}, {"product_stats": stats, "product_core": core},
                    {}, indexes={name: index})


def vector_cells(name, vectors: dict[str, np.ndarray | None], ts: int = 1000, expires=None, defaults=True):
    beneath = {"in_stock": True, "category_id": "", "rank": 0} if defaults else {}
    return [IndexCells(name, key, ts, expires, {"vector": v}, beneath if v is not None else {})
            for key, v in vectors.items()]


def filter_cells(name, key, ts=2000, **values):
    return [IndexCells(name, key, ts, None, values)]


def exact(metric, query, vectors: dict[str, np.ndarray], k):
    keys = list(vectors)
    s = scores(metric, query, np.stack([vectors[key] for key in keys]))
    order = np.argsort(s if metric == "l2" else -s, kind="stable")[:k]
    return [keys[i] for i in order], s


@pytest.fixture
def prepared(vector_index, unique):
    def make(metric="cosine", ttl_s=0):
        registry = registry_with(f"ix_{unique}_{metric}", metric, ttl_s)
        vector_index.prepare(registry)
        return registry, f"ix_{unique}_{metric}"
    return make


@pytest.mark.parametrize("metric", ["cosine", "dot", "l2"])
def test_nearest_first_with_exact_scores(vector_index, prepared, metric):
    registry, name = prepared(metric)
    rng = np.random.default_rng(7)
    vectors = {f"p{i}": rng.standard_normal(DIM).astype(np.float32) for i in range(300)}
    if metric == "dot":  # Cassandra's DOT_PRODUCT is defined for unit vectors
        vectors = {k: v / np.linalg.norm(v) for k, v in vectors.items()}
    vector_index.write(vector_cells(name, vectors))
    query = rng.standard_normal(DIM).astype(np.float32)
    hits = vector_index.search(registry, name, query, 20, {})
    truth, _ = exact(metric, query, vectors, 20)
    assert len(hits) == 20
    assert len({h.key for h in hits} & set(truth)) >= 19  # approximate, but not by much at this size
    for hit in hits:  # the scores are exact, whatever the engine found
        expected = scores(metric, query, vectors[hit.key][None, :])[0]
        assert hit.score == pytest.approx(expected, rel=1e-5, abs=1e-6)
    ordered = [h.score for h in hits]
    assert ordered == sorted(ordered, reverse=metric != "l2")


def test_the_greater_write_timestamp_wins_in_any_order_and_replays_change_nothing(vector_index, prepared):
    registry, name = prepared()
    target = np.ones(DIM, dtype=np.float32)
    away = -target
    vector_index.write(vector_cells(name, {"new-first": target}, ts=2000))
    vector_index.write(vector_cells(name, {"new-first": away}, ts=1000))
    vector_index.write(vector_cells(name, {"old-first": away}, ts=1000))
    vector_index.write(vector_cells(name, {"old-first": target}, ts=2000))
    for _ in range(2):  # the second round is a replay
        hits = vector_index.search(registry, name, target, 2, {})
        assert [h.key for h in hits] == ["new-first", "old-first"]
        assert [round(h.score, 5) for h in hits] == [1.0, 1.0]
        vector_index.write(vector_cells(name, {"new-first": target}, ts=2000)
                           + vector_cells(name, {"old-first": away}, ts=1000))


def test_a_removed_vector_leaves_the_results_and_an_older_write_does_not_bring_it_back(vector_index, prepared):
    registry, name = prepared()
    query = np.ones(DIM, dtype=np.float32)
    vector_index.write(vector_cells(name, {"gone": query, "stays": query * 0.5}, ts=1000))
    assert {h.key for h in vector_index.search(registry, name, query, 10, {})} == {"gone", "stays"}
    vector_index.write(vector_cells(name, {"gone": None}, ts=3000))
    assert [h.key for h in vector_index.search(registry, name, query, 10, {})] == ["stays"]
    vector_index.write(vector_cells(name, {"gone": query}, ts=2000))  # a late replay of an older update
    assert [h.key for h in vector_index.search(registry, name, query, 10, {})] == ["stays"]
    vector_index.write(vector_cells(name, {"gone": query}, ts=4000))  # a newer one
    assert {h.key for h in vector_index.search(registry, name, query, 10, {})} == {"gone", "stays"}


def test_an_expired_vector_is_never_returned(vector_index, prepared):
    registry, name = prepared()
    query = np.ones(DIM, dtype=np.float32)
    now = int(time.time() * 1000)
    vector_index.write(vector_cells(name, {"short": query}, ts=now * 1000, expires=now + 1500)
                       + vector_cells(name, {"forever": -query}, ts=now * 1000))
    assert [h.key for h in vector_index.search(registry, name, query, 1, {})] == ["short"]
    deadline = time.monotonic() + 10
    while "short" in {h.key for h in vector_index.search(registry, name, query, 2, {})}:
        assert time.monotonic() < deadline, "a vector past its expiry still found after 10 s"
        time.sleep(0.2)
    assert time.time() * 1000 >= now + 1500 - 1000  # not gone before its time (Cassandra expires to the second)
    assert [h.key for h in vector_index.search(registry, name, query, 2, {})] == ["forever"]


def test_filters_match_written_values_and_defaults_where_never_written(vector_index, prepared):
    registry, name = prepared()
    rng = np.random.default_rng(3)
    vectors = {f"p{i}": rng.standard_normal(DIM).astype(np.float32) for i in range(60)}
    vector_index.write(vector_cells(name, vectors))
    for i in range(0, 60, 3):  # every third product out of stock, in category c1
        vector_index.write(filter_cells(name, f"p{i}", in_stock=False, category_id="c1", rank=i))
    query = rng.standard_normal(DIM).astype(np.float32)
    out = vector_index.search(registry, name, query, 100, {"in_stock": False})
    assert {h.key for h in out} == {f"p{i}" for i in range(0, 60, 3)}
    both = vector_index.search(registry, name, query, 5, {"in_stock": True, "category_id": ""})
    truth, _ = exact("cosine", query, {k: v for k, v in vectors.items() if int(k[1:]) % 3}, 5)
    assert [h.key for h in both] == truth  # never-written filters read as their defaults
    assert [h.key for h in vector_index.search(registry, name, query, 5, {"rank": 9})] == ["p9"]
    # an older filter write loses; a newer one moves the product back in stock
    vector_index.write(filter_cells(name, "p3", ts=1500, in_stock=True))
    assert "p3" not in {h.key for h in vector_index.search(registry, name, query, 100, {"in_stock": True})}
    vector_index.write(filter_cells(name, "p3", ts=2500, in_stock=True))
    assert "p3" in {h.key for h in vector_index.search(registry, name, query, 100, {"in_stock": True})}


def test_a_filter_written_before_the_vector_is_kept(vector_index, prepared):
    """The defaults written beneath a vector never overwrite a real filter value."""
    registry, name = prepared()
    query = np.ones(DIM, dtype=np.float32)
    vector_index.write(filter_cells(name, "early", ts=500, in_stock=False))
    vector_index.write(vector_cells(name, {"early": query}, ts=1000))
    assert [h.key for h in vector_index.search(registry, name, query, 5, {"in_stock": False})] == ["early"]
    assert vector_index.search(registry, name, query, 5, {"in_stock": True}) == []


def test_an_empty_index_answers_nothing(vector_index, prepared):
    registry, name = prepared()
    assert vector_index.search(registry, name, np.ones(DIM, dtype=np.float32), 10, {}) == []


def test_recall_at_100_against_exact_search(vector_index, unique):
    """Clustered 64-d vectors, as embeddings of a catalogue fall; the benchmark measures 100k and 1M."""
    dim, n = 64, 4000
    stats = FeatureGroup("product_stats", "product", 1, 0, (Feature("embedding", "vector", (0.0,) * dim, dim),))
    name = f"recall_{unique}"
    registry = Registry({"product": Entity("product", ("product_id",))}, {"product_stats": stats}, {},
                        indexes={name: VectorIndex(name, "product_stats", "embedding")})
    vector_index.prepare(registry)
    rng = np.random.default_rng(11)
    centres = rng.standard_normal((40, dim))
    base = (centres[rng.integers(0, 40, n)] + 0.35 * rng.standard_normal((n, dim))).astype(np.float32)
    vectors = {f"p{i}": v for i, v in enumerate(base)}
    for start in range(0, n, 1000):
        vector_index.write(vector_cells(name, dict(list(vectors.items())[start:start + 1000]), defaults=False))
    queries = (centres[rng.integers(0, 40, 20)] + 0.35 * rng.standard_normal((20, dim))).astype(np.float32)
    found = 0
    for q in queries:
        truth, _ = exact("cosine", q, vectors, 100)
        found += len({h.key for h in vector_index.search(registry, name, q, 100, {})} & set(truth))
    assert found / (100 * len(queries)) >= 0.95
