"""Column transforms on whole columns: each transform's values, and what an absent
value becomes (the column's default, the transformed feature default, or 0)."""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest

from vahini.serving import transforms
from vahini.registry.model import Column

PRESENT = np.array([True, True, False])


def run(c: Column, values, present=PRESENT, **extra) -> list:
    return transforms.scalar(c, np.asarray(values), present.copy(), **extra).tolist()


def test_plain_log1p_clip_and_bucketize_transform_the_feature_default_where_absent():
    assert run(Column("x", "a.x"), [1.5, 2.0, 0.0]) == [[1.5], [2.0], [0.0]]
    assert run(Column("x", "a.x", "log1p"), [math.e - 1, -5.0, 0.0]) == [[pytest.approx(1.0)], [0.0], [0.0]]
    assert run(Column("x", "a.x", "clip", (0.0, 1.0)), [-2.0, 0.5, 7.0]) == [[0.0], [0.5], [1.0]]
    assert run(Column("x", "a.x", "bucketize", ((10, 50),)), [9.9, 10.0, 50.0]) == [[0], [1], [2]]
    # an absent value is the feature's default run through the transform, unless the column sets a default
    assert run(Column("x", "a.x", "clip", (1.0, 2.0)), [1.5, 1.5, 0.0]) == [[1.5], [1.5], [1.0]]
    assert run(Column("x", "a.x", "clip", (1.0, 2.0), default=-1.0), [1.5, 1.5, 0.0]) == [[1.5], [1.5], [-1.0]]


def test_one_hot_marks_known_values_and_nothing_for_unknown_or_absent_ones():
    c = Column("brand", "p.brand", "one_hot", (("acme", "globex"),))
    values = np.array(["globex", "zeta", "acme"], dtype=object)
    assert run(c, values) == [[0, 1], [0, 0], [0, 0]]  # the third is absent: its stored "acme" is a default
    assert run(Column("n", "p.n", "one_hot", ((1, 3),)), np.array([3, 1, 2])) == [[0, 1], [1, 0], [0, 0]]


def test_ratio_and_age_give_the_default_or_zero_when_a_side_is_missing_or_zero():
    c = Column("r", "a.x", "ratio", ("a.y",))
    over = (np.array([2.0, 0.0, 4.0]), np.array([True, True, True]))
    assert run(c, [1.0, 5.0, 8.0], over=over) == [[0.5], [0.0], [0.0]]  # 5 / 0 and an absent numerator
    assert run(Column("r", "a.x", "ratio", ("a.y",), default=-1.0), [1.0, 5.0, 8.0], over=over) == \
        [[0.5], [-1.0], [-1.0]]
    day = 86_400_000
    assert run(Column("a", "a.t", "age", ("d",)), [10 * day - day // 2, 9 * day, 0], now_ms=10 * day) == \
        [[0.5], [1.0], [0.0]]


def test_hash_is_crc32_of_the_utf8_id_into_1_to_buckets_with_0_for_absent_ids():
    c = Column("h", "p.c", "hash", (1000,), dtype="int32")
    got = run(c, np.array(["shoes", "Ünïcode", "x"], dtype=object))
    assert got == [[1 + zlib.crc32(b"shoes") % 1000], [1 + zlib.crc32("Ünïcode".encode()) % 1000], [0]]
    assert transforms.hash_bucket(["", "a"], 7).tolist() == [0, 1 + zlib.crc32(b"a") % 7]


def test_int32_columns_are_rounded_and_hashed_sequences_are_one_row_for_every_row():
    assert run(Column("x", "a.x", dtype="int32"), [1.4, 2.6, -0.6], np.ones(3, bool)) == [[1.0], [3.0], [-1.0]]
    seq = ["shoes", "hats", "shoes", ""]
    hashed = transforms.sequence(Column("s", "seq", "hash", (10,)), seq, None, 2)
    assert hashed.shape == (1, 4)  # the executor puts it on every row (test_model_proxy checks the matrix)
    assert hashed[0, 3] == 0 and hashed[0, 0] == hashed[0, 2] != hashed[0, 1]
    counted = transforms.sequence(Column("c", "seq", "count_matching", ("row",)), seq, ["shoes", "bags", None], 3)
    assert counted.ravel().tolist() == [2, 0, 0]
