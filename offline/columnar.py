"""A training set's matrix for many label rows at once, column by column.

The Model Proxy serves one request at a time, and the replay builder
(vahini.offline.training_set, `--method replay`) runs it once per labelled request:
some 2 ms each, most of it per-request bookkeeping. This builder takes the same graph
through the same steps for every label row of a chunk together:

- each lookup is one DuckDB point-in-time join over the chunk's rows, level by level,
  a chained lookup's keys built from the earlier level's values as the executor builds them;
- each stored row is decoded once, by the serving FeatureReader, however many label rows
  read it; its TTL is then applied per label row, as of that row's moment;
- each column is made by the serving transforms and gathered by the serving loops, as
  the executor makes it: once per distinct stored row, or row by row where the moment
  matters (`age`) or two sources meet (`ratio`);
- sequences are read once per (user, moment), as the executor reads them per request.

The replay builder is its reference: a test builds both from the same archive and
holds them equal, bit for bit, and the skew test holds this one equal to what was
served."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vahini.codecs.loops import take_rows_into
from vahini.offline.archive_reader import ArchiveReader
from vahini.offline.as_of import AsOfFeatures, Moment
from vahini.registry.model import KEY_SEPARATOR, Column, Lookup, ModelGraph, Registry
from vahini.serving import transforms
from vahini.serving.interactions import padded
from vahini.serving.model_proxy import levels, plan_of
from vahini.serving.retrieval import EXPIRED, MISSING, PRESENT, FeatureReader, GroupResult, empty_column

# A group whose archived rows hold up to this many bytes (their blobs, and 100 a row
# for the Python objects) is decoded whole, once: its blobs and decoded values take
# about twice that while it is. A bigger one is decoded chunk by chunk, only the rows
# each chunk reads.
WHOLE_GROUP_BYTES = 256 * 2**20


@dataclass
class _Looked:
    """One lookup over a chunk: the values and status of each distinct stored row it
    found, then two rows of the features' defaults (status MISSING, then EXPIRED), and
    `index[i]` the row of label row i."""

    features: list[str]
    values: dict[str, np.ndarray]
    status: np.ndarray  # (distinct rows + 2, features) int8
    index: np.ndarray


@dataclass
class _Found:
    """A lookup's point-in-time join over a chunk: the label rows that found a stored
    row (`found`), the position of each one's row among the distinct rows found
    (`of_found`), the number of label rows asked, and those rows decoded."""

    found: np.ndarray
    of_found: np.ndarray
    asked: int
    decoded: GroupResult


@dataclass
class _Sequence:
    """A sequence over a chunk: `request[i]` the (user, moment) of label row i, and
    `ids[r]` the sequence's ids for request r."""

    request: np.ndarray
    ids: list[list[str]]


@dataclass
class _Read:
    """A chunk's label rows as read ahead: their context ids and moments, the first
    level's stored rows, and the sequences."""

    rows: int
    context: dict[str, pa.Array]
    moments: np.ndarray
    first_level: dict[str, _Found]
    sequences: dict[str, _Sequence]


class ColumnarBuilder:
    def __init__(self, registry: Registry, graph: ModelGraph, reader: ArchiveReader,
                 whole_group_bytes: int | None = None):
        self._registry, self._graph, self._reader = registry, graph, reader
        self._whole_group_bytes = WHOLE_GROUP_BYTES if whole_group_bytes is None else whole_group_bytes
        self._wholes: dict[tuple[str, tuple[str, ...]], GroupResult | None] = {}
        self._decoding = threading.Lock()  # the reading thread and the building one may both ask
        self._plan = plan_of(graph, registry)
        self._levels = levels(graph)
        # Used to decode stored rows only: its store is never read.
        self._decoder = FeatureReader(AsOfFeatures(Moment()), None, lambda: registry, lru=False)

    @property
    def columns(self) -> tuple[list[str], list[str]]:
        """The matrix's column names and dtypes."""
        return self._plan.columns, self._plan.dtypes

    def read_ahead(self, labels: pa.Table, moments: np.ndarray) -> _Read:
        """What the chunk reads before any of its values are known: its first level's
        rows and its sequences. A training set reads the next chunk's in a thread while
        it builds this one's matrix (DuckDB runs a join on one core and lets go of the GIL)."""
        context = self._context(labels)
        first = {lookup.name: self._find(lookup, self._keys(lookup, context, {}), moments)
                 for lookup in (self._levels[0] if self._levels else [])}
        return _Read(labels.num_rows, context, moments, first, self._sequences(context, moments))

    def matrix_of(self, read: _Read) -> np.ndarray:
        """The rows x columns float32 matrix the Model Proxy would have served for each
        label row of a chunk (its context ids as of its moment), from what read_ahead read."""
        context, moments = read.context, read.moments
        looked: dict[str, _Looked] = {}
        for k, level in enumerate(self._levels):
            for lookup in level:
                found = read.first_level[lookup.name] if k == 0 else \
                    self._find(lookup, self._keys(lookup, context, looked), moments)
                looked[lookup.name] = self._decoded(lookup, found, moments)
        sequences = read.sequences
        matrix = np.empty((read.rows, len(self._plan.columns)), np.float32)
        for c, (start, _, _), as_is in zip(self._graph.columns, self._plan.spans, self._plan.as_is):
            if as_is:
                values, _, index = _distinct(looked, c.source)
                take_rows_into(matrix, start, values, index)
            elif c.source in sequences:
                self._sequence_column(matrix, start, c, sequences[c.source], context, looked)
            else:
                take_rows_into(matrix, start, *_block(c, looked, moments))
        return matrix

    # -- lookups -------------------------------------------------------------------------------
    def _context(self, labels: pa.Table) -> dict[str, pa.Array]:
        """The context ids, as checked by labels.check_context_ids."""
        return {name: labels[name].combine_chunks() for name in self._graph.context}

    def _keys(self, lookup: Lookup, context: dict[str, pa.Array], looked: dict[str, _Looked]) -> pa.Array:
        """Each label row's storage key for `lookup`; null where a part is missing."""
        parts = []
        for source in self._plan.key_sources[lookup.name]:
            if source == "row":
                parts.append(context[self._graph.rows])
            elif source.startswith("context."):
                parts.append(context[source[len("context."):]])
            else:
                parts.append(_key_part(looked, source))
        return parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, KEY_SEPARATOR)

    def _find(self, lookup: Lookup, keys: pa.Array, moments: np.ndarray) -> _Found:
        """The stored rows each label row reads, decoded once each."""
        at = self._latest_rows(lookup, keys, moments)
        found = np.flatnonzero(at >= 0)
        whole = self._whole_group(lookup)
        if whole is not None:
            return _Found(found, at[found], len(at), whole)
        positions, of_found = _distinct_positions(at[found])
        return _Found(found, of_found, len(at), self._decode(lookup, self._reader.blobs(lookup.group, positions)))

    def _whole_group(self, lookup: Lookup) -> GroupResult | None:
        """Every archived row of the lookup's group, decoded, when the group is at most
        `whole_group_bytes` (see WHOLE_GROUP_BYTES): decoded once for the whole training
        set rather than chunk by chunk. None for a bigger group."""
        key = (lookup.group, self._plan.features[lookup.name])
        with self._decoding:
            if key not in self._wholes:
                count, blob_bytes = self._reader.group_size(lookup.group)
                self._wholes[key] = None if blob_bytes + 100 * count > self._whole_group_bytes else \
                    self._decode(lookup, self._reader.blobs(lookup.group, np.arange(count, dtype=np.int64)))
            return self._wholes[key]

    def _decode(self, lookup: Lookup, blobs: list[bytes | None]) -> GroupResult:
        group = self._registry.groups[lookup.group]
        features = list(self._plan.features[lookup.name]) or [f.name for f in group.features]
        return self._decoder.decode(self._registry, group, blobs, features)

    def _decoded(self, lookup: Lookup, rows: _Found, moments: np.ndarray) -> _Looked:
        group = self._registry.groups[lookup.group]
        decoded, found, of_found = rows.decoded, rows.found, rows.of_found
        features = decoded.features
        distinct = len(decoded.event_time_ms)
        index = np.full(rows.asked, distinct, np.int64)  # no row: the MISSING row
        if group.ttl_s:  # as of each label row's moment; an unreadable row (no event time) stays unreadable
            event_time = decoded.event_time_ms[of_found]
            expired = (event_time != 0) & (moments[found] - event_time > group.ttl_s * 1000)
            of_found = np.where(expired, distinct + 1, of_found)
        index[found] = of_found
        values = {f: np.concatenate([decoded.values[f], empty_column(group.feature(f), 2)]) for f in features}
        status = np.concatenate([decoded.status, np.full((1, len(features)), MISSING, np.int8),
                                 np.full((1, len(features)), EXPIRED, np.int8)])
        return _Looked(features, values, status, index)

    def _latest_rows(self, lookup: Lookup, keys: pa.Array, moments: np.ndarray) -> np.ndarray:
        """reader.latest_rows, each distinct (key, moment) asked once when the key is not
        the row id: a user's key repeats on every row of a request."""
        if "row" in self._plan.key_sources[lookup.name]:  # nearly every (row id, moment) is distinct
            return self._reader.latest_rows(lookup.group, keys, moments)
        pairs, first = _distinct_pairs(_codes(keys), moments)
        at = self._reader.latest_rows(lookup.group, keys.take(pa.array(first)), moments[first])
        return at[pairs]

    # -- sequences ------------------------------------------------------------------------------
    def _sequences(self, context: dict[str, pa.Array], moments: np.ndarray) -> dict[str, _Sequence]:
        """Each sequence's ids per (user, moment): one history read per user, type and
        moment, however many sequences use it, of the longest length among them."""
        graph = self._graph
        if not graph.sequences:
            return {}
        longest: dict[tuple[str, str], int] = {}
        for s in graph.sequences:
            key = (s.user.partition(".")[2], s.type)
            longest[key] = max(longest.get(key, 0), s.length)
        requests = {field: _requests(context[field], moments) for field, _ in longest}
        read: dict[tuple[str, str, str], list[list[str | None]]] = {}  # (user field, type, id field) -> per request
        out = {}
        for s in graph.sequences:
            field = s.user.partition(".")[2]
            request, pairs = requests[field]
            if (field, s.type, s.field) not in read:
                n = longest[(field, s.type)]
                read[(field, s.type, s.field)] = self._reader.newest_ids_as_of(
                    [(user, s.type, t, n) for user, t in pairs], s.field)
            out[s.name] = _Sequence(request, [padded(ids, s.length) for ids in read[(field, s.type, s.field)]])
        return out

    def _sequence_column(self, matrix: np.ndarray, start: int, c: Column, sequence: _Sequence,
                         context: dict[str, pa.Array], looked: dict[str, _Looked]) -> None:
        if c.transform == "hash":  # the same ids on every row of a request: transforms.sequence's
            # hash_bucket, over every request's ids in one call
            flat = [id_ for ids in sequence.ids for id_ in ids]
            block = transforms.hash_bucket(flat, c.args[0]).reshape(len(sequence.ids), -1)
            take_rows_into(matrix, start, block, sequence.request)
            return
        # count_matching: the serving transform, request by request, on the request's rows
        match = context[self._graph.rows].to_pylist() if c.args[0] == "row" else _ids(looked, c.args[0])
        order = np.argsort(sequence.request, kind="stable")  # the rows, request by request
        ends = np.searchsorted(sequence.request[order], np.arange(1, len(sequence.ids) + 1)).tolist()
        in_order = np.array(match, dtype=object)[order].tolist()
        blocks = [transforms.sequence(c, ids, in_order[begin:end], end - begin)
                  for ids, begin, end in zip(sequence.ids, [0, *ends[:-1]], ends)]
        block = np.empty((len(match), 1), np.float32)
        block[order] = np.concatenate(blocks) if blocks else block[:0]
        take_rows_into(matrix, start, block, np.arange(len(match), dtype=np.int64))


def _distinct_positions(at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """np.unique(at, return_inverse=True) for non-negative ints, in linear time: the
    positions are a table's rows, so a mark per row replaces the sort."""
    if not len(at):
        return at, at
    marked = np.zeros(int(at.max()) + 1, bool)
    marked[at] = True
    positions = np.flatnonzero(marked)
    rank = np.cumsum(marked) - 1
    return positions, rank[at]


def _requests(users: pa.Array, moments: np.ndarray) -> tuple[np.ndarray, list[tuple[str, int]]]:
    """Per label row the position of its (user, moment) among the distinct pairs, and the pairs."""
    encoded = users.dictionary_encode()
    codes, names = _codes(encoded), encoded.dictionary.to_pylist()
    pairs, first = _distinct_pairs(codes, moments)
    return pairs, [(names[u], int(t)) for u, t in zip(codes[first].tolist(), moments[first].tolist())]


def _distinct_pairs(codes: np.ndarray, moments: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row the position of its (code, moment) among the distinct pairs, and the
    first row of each pair. Hashed (dictionary-encoded), not sorted. A code of -1 (a
    null id) is a pair like any other."""
    times = pa.array(moments, pa.int64()).dictionary_encode()
    time_codes = times.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    pair = pa.array((codes + 1) * len(times.dictionary) + time_codes).dictionary_encode()
    positions = pair.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    first = np.full(len(pair.dictionary), len(positions), np.int64)
    np.minimum.at(first, positions, np.arange(len(positions), dtype=np.int64))
    return positions, first


def _codes(ids: pa.Array) -> np.ndarray:
    """Each id's number among the distinct ids (-1 for null): its index in
    ids.dictionary_encode().dictionary."""
    encoded = ids if pa.types.is_dictionary(ids.type) else ids.dictionary_encode()
    return pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)


def _distinct(looked: dict[str, _Looked], source: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`<lookup>.<feature>` per distinct stored row (defaults at the end), its status,
    and per label row the position of its value."""
    name, _, feature = source.partition(".")
    lk = looked[name]
    return lk.values[feature], lk.status[:, lk.features.index(feature)], lk.index


def _present(status: np.ndarray) -> np.ndarray | None:
    """As the executor passes it: None when every value is present."""
    present = status == PRESENT
    return None if present.all() else present


def _per_row(looked: dict[str, _Looked], source: str) -> tuple[np.ndarray, np.ndarray | None]:
    values, status, index = _distinct(looked, source)
    return values[index], _present(status[index])


def _block(c: Column, looked: dict[str, _Looked], moments: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A transformed column's block and, per label row, its row in the block."""
    if c.transform == "ratio":  # two sources, maybe of two lookups: row by row
        values, present = _per_row(looked, c.source)
        block = transforms.scalar(c, values, present, over=_per_row(looked, c.args[0]))
        return block, np.arange(len(values), dtype=np.int64)
    if c.transform == "age":  # measured from each row's own moment
        values, present = _per_row(looked, c.source)
        return transforms.scalar(c, values, present, now_ms=moments), np.arange(len(values), dtype=np.int64)
    values, status, index = _distinct(looked, c.source)  # once per distinct stored row
    return transforms.scalar(c, values, _present(status)), index


def _distinct_ids(looked: dict[str, _Looked], source: str) -> tuple[list[str | None], np.ndarray]:
    """A feature as an id per distinct stored row (None where it has no value), and per
    label row the position of its id."""
    values, status, index = _distinct(looked, source)
    return [v if s == PRESENT else None for v, s in zip(transforms.as_strings(values), status.tolist())], index


def _ids(looked: dict[str, _Looked], source: str) -> list[str | None]:
    """A feature as an id per label row: None where it has no value."""
    ids, index = _distinct_ids(looked, source)
    return [ids[i] for i in index.tolist()]


def _key_part(looked: dict[str, _Looked], source: str) -> pa.Array:
    """A feature as a key part per label row: null where it has no value, or one no
    stored key can hold (empty, or with the key separator in it)."""
    ids, index = _distinct_ids(looked, source)
    parts = [v if v and KEY_SEPARATOR not in v else None for v in ids]
    return pa.array(parts, pa.string()).take(pa.array(index))
