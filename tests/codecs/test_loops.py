"""The compiled read-path loops (vahini.codecs._loops) against the Python loops they
stand in for, on the same inputs, well-formed and not: the same results, and None
from the compiled loop exactly where the Python one raises (the caller then runs the
Python loop for its error)."""

import random
import zlib

import numpy as np
import pytest

from vahini.serving import transforms
from vahini import feature_cache
from vahini.codecs import feature_blob
from vahini.codecs.loops import compiled
from vahini.errors import DecodeError
from vahini.ports.hot_tier import HEADER_LEN, version_header
from vahini.registry.model import Feature

FEATURES = (
    Feature("age", "int", 0), Feature("city", "string", "unknown"), Feature("ctr", "float32", 0.0),
    Feature("emb", "vector", (0.0, 0.0), dim=2), Feature("brand", "string", ""),
)
WORDS = ["", "a", "Pune ✓", "東京", "x" * 300, "acme|globex"]
# Without a C compiler at install, the comparisons cannot run, and test_the_compiled_loops_are_built fails.
needs_compiled = pytest.mark.skipif(compiled is None, reason="vahini.codecs._loops was not built")


def test_the_compiled_loops_are_built():
    # `make test` installs with a C compiler at hand: a missing module means the build failed quietly.
    assert compiled is not None, "vahini.codecs._loops was not built: see the pip install output for its error"


def _entries(rng: random.Random) -> list:
    blob = feature_blob.encode(FEATURES, 1, 5, {"age": 3, "city": rng.choice(WORDS)})
    return [None, b"", b"123", version_header(7, b"V") + blob, version_header(0, b"N"),
            version_header(9, b"F"), version_header(4, b"V"), version_header(4, b"N") + b"trailing",
            bytearray(version_header(3, b"V") + b"abc"), version_header(1, b"V")[:HEADER_LEN - 1]]


@needs_compiled
def test_unwrapping_cache_entries_matches_the_python_loop():
    rng = random.Random(7)
    for _ in range(200):
        entries = rng.sample(_entries(rng), rng.randint(0, 10))
        assert feature_cache._unwrapped(entries) == feature_cache._unwrapped_in_python(entries)
    assert feature_cache._unwrapped((version_header(1, b"V") + b"x",)) == [b"x"]  # any sequence
    with pytest.raises(ValueError, match="header"):
        compiled.unwrap_entries([b"x" * 30], HEADER_LEN, HEADER_LEN, ord("V"), ord("N"))


def _blob(rng: random.Random, version: int = 1) -> bytes:
    values = {"age": rng.randint(-2**40, 2**40), "city": rng.choice(WORDS), "brand": rng.choice(WORDS),
              "ctr": rng.random(), "emb": [rng.random(), rng.random()]}
    sent = dict(rng.sample(list(values.items()), rng.randint(0, 5)))
    return feature_blob.encode(FEATURES, version, rng.randint(0, 2**50), sent)


def _damaged(rng: random.Random, blob: bytes) -> bytes:
    strings = feature_blob._row_dtype(FEATURES).itemsize  # where the first string's length is
    cut = rng.choice([lambda b: b[:rng.randint(0, len(b))],  # truncated anywhere
                      lambda b: b + b"\xff",
                      lambda b: b[:-1] + b"\xff",  # the last string's last byte no longer UTF-8
                      lambda b: b[:strings] + b"\xff\xff\xff\x7f" + b[strings + 4:]])  # a length past the end
    return cut(blob)


def _decoded(monkeypatch, use_compiled: bool, blobs, version: int):
    monkeypatch.setattr(feature_blob, "compiled", compiled if use_compiled else None)
    try:
        got = feature_blob.decode_version(blobs, FEATURES, version, None)
    except DecodeError as exc:
        return ("error", str(exc))
    if got is None:
        return None
    return ({k: v.tolist() for k, v in got.columns.items()}, got.event_time_ms.tolist(), got.present.tolist())


@needs_compiled
def test_decoding_blobs_matches_the_python_loops_for_well_formed_and_damaged_blobs(monkeypatch):
    rng = random.Random(11)
    outcomes = set()
    for _ in range(300):
        blobs = [_blob(rng, version=rng.choice([1, 1, 1, 2])) for _ in range(rng.randint(1, 6))]
        if rng.random() < 0.5:
            at = rng.randrange(len(blobs))
            blobs[at] = _damaged(rng, blobs[at])
        fast, slow = _decoded(monkeypatch, True, blobs, 1), _decoded(monkeypatch, False, blobs, 1)
        assert fast == slow
        outcomes.add("none" if fast is None else fast[0] if fast[0] == "error" else "decoded")
    assert outcomes == {"none", "error", "decoded"}  # every path was taken


@needs_compiled
def test_string_columns_give_none_exactly_where_the_python_loop_raises():
    rng = random.Random(3)
    start = feature_blob._row_dtype(FEATURES).itemsize
    failed = 0
    for _ in range(300):
        blobs = [_blob(rng) for _ in range(rng.randint(1, 4))]
        if rng.random() < 0.6:
            at = rng.randrange(len(blobs))
            blobs[at] = _damaged(rng, blobs[at])
        got = compiled.string_columns(blobs, start, 2)
        try:
            expected = _python_string_columns(blobs, start, 2)
        except DecodeError:
            assert got is None
            failed += 1
        else:
            assert got == expected
    assert 0 < failed < 300


def _python_string_columns(blobs, start, count):
    saved = feature_blob.compiled
    feature_blob.compiled = None
    try:
        return feature_blob._string_columns(blobs, start, count)
    finally:
        feature_blob.compiled = saved


@needs_compiled
def test_hash_buckets_match_the_python_loop_and_crc32():
    rng = random.Random(5)
    ids = [rng.choice(WORDS + [f"p{i}" for i in range(50)]) for _ in range(500)]
    for buckets in (1, 7, 1000, 100_000):
        assert transforms.hash_bucket(ids, buckets).tolist() == transforms._hash_bucket_in_python(ids, buckets).tolist()
    assert transforms.hash_bucket(["东", ""], 10).tolist() == [1 + zlib.crc32("东".encode()) % 10, 0]
    with pytest.raises(TypeError):
        compiled.hash_buckets([3], 10, {}, np.zeros(1, np.float32))  # ids are str, as the Python loop needs
    with pytest.raises(ValueError, match="slots"):
        compiled.hash_buckets(["a"], 10, {}, np.zeros(2, np.float32))


@needs_compiled
def test_redis_commands_are_packed_as_hiredis_packs_them():
    import hiredis
    rng = random.Random(9)
    for _ in range(200):
        args = [rng.choice(["MGET", "k✓", b"\x00\xff\r\n", b"", "", 0, -12, 10**20, "x" * rng.randint(0, 70000)])
                for _ in range(rng.randint(1, 12))]
        before = list(args)
        assert compiled.redis_command(args) == hiredis.pack_command(tuple(args))
        assert args == before  # ints are formatted into a copy, not into the caller's list
    assert compiled.redis_command(("SET", "k", 1.5)) is None  # other types: hiredis packs them
    assert compiled.redis_command(("SET", "k", True)) is None
    assert compiled.redis_command(()) is None


@needs_compiled
def test_looking_up_ints_matches_fromiter_over_dict_get(monkeypatch):
    from vahini.codecs import loops
    rng = random.Random(4)
    mapping = {f"k{i}": rng.randint(-2**40, 2**40) for i in range(30)} | {None: -1}
    items = [rng.choice(list(mapping) + ["absent", ""]) for _ in range(300)]
    expected = [mapping.get(i, 99) for i in items]
    assert loops.looked_up(items, mapping, 99).tolist() == expected
    monkeypatch.setattr(loops, "compiled", None)
    assert loops.looked_up(items, mapping, 99).tolist() == expected
    monkeypatch.undo()
    with pytest.raises(ValueError, match="slots"):
        compiled.lookup_into(items, mapping, 0, np.zeros(3, np.int64))
    with pytest.raises(TypeError):
        compiled.lookup_into([["unhashable"]], mapping, 0, np.zeros(1, np.int64))


def _sources(rng: np.random.Generator, keys: int):
    records = np.zeros(keys, np.dtype([("a", "<i8"), ("b", "<f4"), ("v", "<f4", (3,)), ("flag", "?")]))
    records["a"] = rng.integers(-2**40, 2**40, keys)
    records["b"] = rng.normal(size=keys)
    records["v"] = rng.normal(size=(keys, 3))
    records["flag"] = rng.integers(0, 2, keys).astype(bool)
    yield from (records["a"], records["b"], records["v"], records["flag"])  # strided views into records
    yield from (rng.normal(size=keys), rng.integers(-5, 5, keys).astype(np.int32), rng.normal(size=(keys, 4)),
                np.broadcast_to(np.arange(2, dtype=np.float32), (keys, 2)),
                rng.integers(0, 256, keys).astype(np.uint8).view(bool))  # a bool byte other than 0 and 1 reads 1


@needs_compiled
def test_taking_rows_into_a_matrix_matches_numpy_fancy_indexing(monkeypatch):
    from vahini.codecs import loops
    rng = np.random.default_rng(8)
    for keys in (1, 5, 40):
        for source in _sources(rng, keys):
            index = rng.integers(-keys, keys, 25)  # negative: from the end, as numpy reads it
            width = source.shape[1] if source.ndim == 2 else 1
            expected = np.full((25, 9), -1.0, np.float32)
            expected[:, 2:2 + width] = source.reshape(keys, width)[index]
            for use_compiled in (True, False):
                monkeypatch.setattr(loops, "compiled", compiled if use_compiled else None)
                out = np.full((25, 9), -1.0, np.float32)
                loops.take_rows_into(out, 2, source, index)
                np.testing.assert_array_equal(out, expected)


@needs_compiled
def test_taking_rows_rejects_what_it_cannot_read():
    out = np.zeros((3, 4), np.float32)
    assert compiled.take_rows_into(out, 0, np.arange(3, dtype=np.uint16), np.zeros(3, np.int64)) is False
    assert not out.any()  # nothing written: the caller falls back to numpy
    with pytest.raises(IndexError, match="out of range"):
        compiled.take_rows_into(out, 0, np.arange(3.0), np.array([0, 3, 1]))
    with pytest.raises(ValueError, match="columns"):
        compiled.take_rows_into(out, 3, np.zeros((3, 2)), np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="index"):
        compiled.take_rows_into(out, 0, np.arange(3.0), np.zeros(2, np.int64))
    with pytest.raises(ValueError, match="float32 matrix"):
        compiled.take_rows_into(np.zeros((3, 4)), 0, np.arange(3.0), np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="float32 matrix"):
        compiled.take_rows_into(out[:, 1:], 0, np.arange(3.0), np.zeros(3, np.int64))


@needs_compiled
def test_bitmap_checks_match_numpy(monkeypatch):
    rng = random.Random(6)
    for _ in range(100):
        blobs = [_blob(rng) for _ in range(rng.randint(1, 6))]
        positions = tuple(rng.sample(range(len(FEATURES)), rng.randint(0, len(FEATURES))))
        answers = set()
        for use_compiled in (True, False):
            monkeypatch.setattr(feature_blob, "compiled", compiled if use_compiled else None)
            decoded = feature_blob.decode_many(blobs, FEATURES)
            answers.add(decoded.all_sent(positions))
            assert decoded.all_sent(positions) == bool(decoded.present[:, list(positions)].all())
        assert len(answers) == 1
    with pytest.raises(ValueError, match="uint8 matrix"):
        compiled.all_bits_set(np.zeros((2, 3), np.uint8), b"\x01")


def _transform_columns(rng: random.Random):
    from vahini.registry.model import Column
    for transform, args in [("", ()), ("log1p", ()), ("clip", (-1.0, 2.5)), ("clip", (0, 0)),
                            ("bucketize", ((-1.0, 0.0, 0.5, 10.0),)), ("bucketize", ((3,),)), ("age", ("h",)),
                            ("age", ("d",)), ("ratio", ("a.y",))]:
        for default in (None, -7.25):
            for dtype in ("float32", "int32"):
                yield Column("c", "a.x", transform, args, dtype, default)


def _column_values(rng: np.random.Generator, n: int):
    yield rng.normal(scale=1e3, size=n)
    yield rng.normal(size=n).astype(np.float32)
    yield rng.integers(-2**40, 2**60, n)
    yield rng.integers(-5, 5, n).astype(np.int32)
    yield rng.integers(0, 2, n).astype(bool)
    yield np.array([np.nan, -0.0, 0.0, np.inf, -np.inf, 0.5, 2.5, 3.5][:n] + [1.0] * max(0, n - 8))
    records = np.zeros(n, np.dtype([("t", "<i8"), ("x", "<f4")]))
    records["x"] = rng.normal(size=n)
    yield records["x"]  # strided


@needs_compiled
def test_scalar_transforms_compiled_match_the_numpy_path(monkeypatch):
    from vahini.serving import transforms
    rng, gen = random.Random(12), np.random.default_rng(12)
    compared = 0
    for c in _transform_columns(rng):
        for values in _column_values(gen, 9):
            present = None if rng.random() < 0.4 else gen.integers(0, 2, 9).astype(bool)
            extra = {"now_ms": 1_764_979_200_000}
            if c.transform == "ratio":
                denominator = gen.choice([0.0, 1.5, -2.0, 4.0], 9)
                extra = {"over": (denominator, None if rng.random() < 0.5 else gen.integers(0, 2, 9).astype(bool))}
            blocks = []
            for use_compiled in (True, False):
                monkeypatch.setattr(transforms, "compiled", compiled if use_compiled else None)
                if use_compiled:  # no quiet fallback to numpy
                    assert transforms._compiled_scalar(c, values, present, **extra) is not None
                blocks.append(transforms.scalar(c, values, None if present is None else present.copy(), **extra))
            with np.errstate(all="ignore"):
                np.testing.assert_array_equal(blocks[0], blocks[1], err_msg=f"{c} on {values.dtype}")
            assert blocks[0].dtype == blocks[1].dtype == np.float32 and blocks[0].shape == blocks[1].shape
            compared += 1
    assert compared == 36 * 7


@needs_compiled
def test_one_hot_compiled_matches_the_numpy_path(monkeypatch):
    from vahini.serving import transforms
    from vahini.registry.model import Column
    gen = np.random.default_rng(13)
    cases = [(("acme", "globex", "東京"), np.array(["acme", "zeta", "東京", "globex", "", "acme"], dtype=object)),
             ((1, 3, 7), np.array([3, 1, 2, 7, 7, 0])), ((True,), np.array([True, False, True, True, False, True]))]
    for values_, labels in cases:
        for default in (None, 2.6):
            for dtype in ("float32", "int32"):
                c = Column("o", "p.b", "one_hot", (values_,), dtype, default)
                for present in (None, gen.integers(0, 2, 6).astype(bool)):
                    blocks = []
                    for use_compiled in (True, False):
                        monkeypatch.setattr(transforms, "compiled", compiled if use_compiled else None)
                        if use_compiled:
                            assert transforms._compiled_one_hot(c, labels, present) is not None
                        blocks.append(transforms.scalar(c, labels, None if present is None else present.copy()))
                    np.testing.assert_array_equal(blocks[0], blocks[1], err_msg=f"{c} {present}")
                    assert blocks[0].dtype == blocks[1].dtype and blocks[0].any()


@needs_compiled
def test_fence_entries_match_the_python_formatting():
    from vahini.ports.feature_store import FeatureRow, write_timestamp_us

    rng = random.Random(9)
    rows = [FeatureRow(rng.choice(["user", "user_category", "é"]), rng.choice(["u1", "ü|ÇAT", "", "a:b"]) + str(i),
                       rng.choice(["g", "user_interaction_windows"]),
                       rng.choice([0, 1, -5, -1_780_000_000_000, 1_780_000_000_123, 9_223_372_036_854_774]),
                       bytes(rng.randrange(256) for _ in range(rng.choice([0, 3, 40]))), 0)
            for i in range(2000)]
    prefix = "vf:1780000000000:"
    expected = {f"{prefix}{r.entity}:{r.group}:{r.key}": feature_cache._FENCE_ENTRY
                % write_timestamp_us(r.event_time_ms, r.blob) for r in rows}
    got = compiled.fence_entries(rows, prefix, feature_cache.FENCE)
    assert got == expected
    assert list(got) == list(expected)  # the same order: one Lua call's keys and values
