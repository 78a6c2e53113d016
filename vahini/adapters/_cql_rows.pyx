# cython: language_level=3, boundscheck=False, wraparound=False
"""RowSerializer.encode compiled: a feature row's routing key, INSERT values and BATCH
statement body, the same bytes as the Python method (the reference; tests compare them,
and both with the driver's bind() and BATCH frame), built in one buffer instead of a
struct call and a join per row. Every feature row the workers write comes through here."""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.string cimport memcpy
from zlib import crc32


cdef inline void _be(char* p, unsigned long long v, int width):
    cdef int i
    for i in range(width):
        p[width - 1 - i] = <char>(v & 0xff)
        v >>= 8


cdef inline bytes _long_bytes(long long v):
    cdef bytes out = PyBytes_FromStringAndSize(NULL, 8)
    _be(PyBytes_AS_STRING(out), <unsigned long long>v, 8)
    return out


cdef inline char* _put(char* p, bytes part):
    cdef Py_ssize_t n = PyBytes_GET_SIZE(part)
    memcpy(p, PyBytes_AS_STRING(part), n)
    return p + n


def encode_row(tuple entity, tuple group, str key, long long event_time_ms, bytes blob, long long ttl,
               bytes head):
    """entity: (encoded, routing key prefix, framed); group: (encoded, framed). Returns
    (routing key, values, statement) as RowSerializer.encode does."""
    cdef bytes key_bytes = key.encode()
    cdef Py_ssize_t key_len = PyBytes_GET_SIZE(key_bytes), blob_len = PyBytes_GET_SIZE(blob)
    cdef bytes entity_framed = entity[2], group_framed = group[1], prefix = entity[1]
    if not -9223372036854775 <= event_time_ms <= 9223372036854774:  # its timestamp in µs fits 64 bits
        raise OverflowError(f"an event time of {event_time_ms} ms is out of the write timestamp's range")
    cdef long long timestamp = event_time_ms * 1000 + <long long>(crc32(blob) % 1000)
    cdef bytes event_time = _long_bytes(event_time_ms), stamp = _long_bytes(timestamp)
    cdef bytes ttl_value = PyBytes_FromStringAndSize(NULL, 4)
    _be(PyBytes_AS_STRING(ttl_value), <unsigned long long>(<unsigned int>(<int>ttl)), 4)
    if not -2147483648 <= ttl <= 2147483647:
        raise OverflowError(f"a TTL of {ttl} is not a CQL int")
    if key_len > 0xffff:
        raise ValueError(f"a key of {key_len} bytes is over the routing key's 65535")
    cdef Py_ssize_t size = (PyBytes_GET_SIZE(head) + PyBytes_GET_SIZE(entity_framed) + 4 + key_len
                            + PyBytes_GET_SIZE(group_framed) + 12 + 4 + blob_len + 12 + 8)
    cdef bytes statement = PyBytes_FromStringAndSize(NULL, size)
    cdef char* p = PyBytes_AS_STRING(statement)
    p = _put(p, head)
    p = _put(p, entity_framed)
    _be(p, <unsigned long long>key_len, 4)
    p = _put(p + 4, key_bytes)
    p = _put(p, group_framed)
    _be(p, 8, 4)
    p = _put(p + 4, event_time)
    _be(p, <unsigned long long>blob_len, 4)
    p = _put(p + 4, blob)
    _be(p, 8, 4)
    p = _put(p + 4, stamp)
    _be(p, 4, 4)
    _put(p + 4, ttl_value)
    cdef Py_ssize_t prefix_len = PyBytes_GET_SIZE(prefix)
    cdef bytes routing_key = PyBytes_FromStringAndSize(NULL, prefix_len + 2 + key_len + 1)
    p = PyBytes_AS_STRING(routing_key)
    p = _put(p, prefix)
    _be(p, <unsigned long long>key_len, 2)
    p = _put(p + 2, key_bytes)
    p[0] = 0
    return routing_key, [entity[0], key_bytes, group[0], event_time, blob, stamp, ttl_value], statement


cdef inline bytes _int_bytes(long long v):
    if not -2147483648 <= v <= 2147483647:
        raise OverflowError(f"{v} is not a CQL int")
    cdef bytes out = PyBytes_FromStringAndSize(NULL, 4)
    _be(PyBytes_AS_STRING(out), <unsigned long long>(<unsigned int>(<int>v)), 4)
    return out


cdef bytes _text_map(dict attributes):
    """map<text, text> as the driver serializes it: the count, each key and value after its length."""
    cdef list parts = [_int_bytes(len(attributes))]
    for k, v in attributes.items():
        kb, vb = (<str>k).encode(), (<str>v).encode()
        parts += [_int_bytes(len(kb)), kb, _int_bytes(len(vb)), vb]
    return b"".join(parts)


def encode_interaction(bytes head, tuple kind, str user_id, str event_id, str product_id, category_id,
                       long long event_time_ms, dict attributes, long long bucket, long long ttl_s):
    """InteractionSerializer.encode's (routing key, values, statement); kind is the type's
    (encoded, framed)."""
    cdef bytes user = user_id.encode(), event = event_id.encode(), product = product_id.encode()
    cdef bytes category = None if category_id is None else (<str>category_id).encode()
    cdef bytes bucket_value = _int_bytes(bucket), ttl_value = _int_bytes(ttl_s)
    cdef bytes time_value = _long_bytes(event_time_ms)
    cdef bytes attribute_map = _text_map(attributes) if attributes else _int_bytes(0)
    cdef bytes kind_framed = kind[1]
    cdef Py_ssize_t user_len = PyBytes_GET_SIZE(user), category_len = -1 if category is None else len(category)
    if user_len > 0xffff:
        raise ValueError(f"a user id of {user_len} bytes is over the routing key's 65535")
    cdef Py_ssize_t size = (PyBytes_GET_SIZE(head) + 4 + user_len + 8 + PyBytes_GET_SIZE(kind_framed) + 12
                            + 4 + PyBytes_GET_SIZE(event) + 4 + PyBytes_GET_SIZE(product)
                            + 4 + (category_len if category_len > 0 else 0)
                            + 4 + PyBytes_GET_SIZE(attribute_map) + 8)
    cdef bytes statement = PyBytes_FromStringAndSize(NULL, size)
    cdef char* p = PyBytes_AS_STRING(statement)
    p = _put(p, head)
    _be(p, <unsigned long long>user_len, 4)
    p = _put(p + 4, user)
    _be(p, 4, 4)
    p = _put(p + 4, bucket_value)
    p = _put(p, kind_framed)
    _be(p, 8, 4)
    p = _put(p + 4, time_value)
    _be(p, <unsigned long long>PyBytes_GET_SIZE(event), 4)
    p = _put(p + 4, event)
    _be(p, <unsigned long long>PyBytes_GET_SIZE(product), 4)
    p = _put(p + 4, product)
    _be(p, <unsigned long long>(<unsigned int>(<int>category_len)), 4)  # -1: null
    p += 4
    if category is not None:
        p = _put(p, category)
    _be(p, <unsigned long long>PyBytes_GET_SIZE(attribute_map), 4)
    p = _put(p + 4, attribute_map)
    _be(p, 4, 4)
    _put(p + 4, ttl_value)
    cdef bytes routing_key = PyBytes_FromStringAndSize(NULL, 2 + user_len + 1 + 2 + 4 + 1)
    p = PyBytes_AS_STRING(routing_key)
    _be(p, <unsigned long long>user_len, 2)
    p = _put(p + 2, user)
    p[0] = 0
    _be(p + 1, 4, 2)
    p = _put(p + 3, bucket_value)
    p[0] = 0
    values = [user, bucket_value, kind[0], time_value, event, product, category, attribute_map, ttl_value]
    return routing_key, values, statement


cdef inline list _slot_for(dict filling, list batches, object replica, bytes routing_key, Py_ssize_t nbytes,
                           Py_ssize_t batch_rows, Py_ssize_t batch_bytes, new_batch):
    """The batch of `replica` being filled, [batch, its statements, rows, bytes]; a new one
    when it is full."""
    cdef list slot = filling.get(replica)
    if slot is None or <Py_ssize_t>slot[2] >= batch_rows or <Py_ssize_t>slot[3] + nbytes > batch_bytes:
        batch = new_batch(routing_key)
        slot = [batch, batch._statements_and_parameters, 0, 0]
        filling[replica] = slot
        batches.append(batch)
    return slot


cdef inline void _add(list slot, bytes query_id, list values, bytes statement, Py_ssize_t nbytes) except *:
    statements = slot[1]  # an EncodedStatements: what its add() does
    (<list>statements).append((True, query_id, values))
    (<list>statements.encoded).append(statement)
    slot[2] = <Py_ssize_t>slot[2] + 1
    slot[3] = <Py_ssize_t>slot[3] + nbytes


def row_batches(rows, long long now_ms, serializer, bytes head, bytes query_id, primary_of,
                Py_ssize_t batch_rows, Py_ssize_t batch_bytes, new_batch):
    """CassandraFeatureStore._batches, compiled: the same batches of the same statements."""
    cdef list batches = []
    cdef dict filling = {}
    cdef dict entities = serializer._entities, groups = serializer._groups
    cdef long long ttl, ttl_s
    cdef Py_ssize_t nbytes
    for r in rows:
        ttl_s = r[5]
        ttl = 0
        if ttl_s:
            ttl = -(-(<long long>r[3] + ttl_s * 1000 - now_ms) // 1000)
            if ttl <= 0:
                continue
        entity = entities.get(r[0])
        group = groups.get(r[2])
        if entity is None or group is None:  # a name not seen yet: the serializer keeps its encodings
            routing_key, values, statement = serializer.encode(r, ttl, head)
        else:
            routing_key, values, statement = encode_row(entity, group, r[1], r[3], r[4], ttl, head)
        nbytes = len(r[4]) + 64
        _add(_slot_for(filling, batches, primary_of(routing_key), routing_key, nbytes, batch_rows, batch_bytes,
                       new_batch), query_id, values, statement, nbytes)
    return batches


def interaction_batches(items, long long now_ms, long long retention_s, long long bucket_ms, serializer,
                        bytes query_id, primary_of, Py_ssize_t batch_rows, Py_ssize_t batch_bytes, new_batch):
    """CassandraColdInteractions._batches over items already in partition order, compiled:
    the same batches of the same statements, and the partitions they hold."""
    cdef list batches = []
    cdef dict filling = {}
    cdef dict kinds = serializer._types
    cdef bytes head = serializer._head, last_key = None
    cdef long long ttl_s, event_time_ms, partitions = 0
    cdef Py_ssize_t nbytes
    replica = None
    for i in items:
        event_time_ms = i.event_time_ms
        ttl_s = retention_s - (now_ms - event_time_ms) // 1000
        if ttl_s <= 0:
            continue
        kind = kinds.get(i.type)
        if kind is None:
            routing_key, values, statement = serializer.encode(i, event_time_ms // bucket_ms, ttl_s)
        else:
            routing_key, values, statement = encode_interaction(
                head, kind, i.user_id, i.event_id, i.product_id, i.category_id, event_time_ms, i.attributes,
                event_time_ms // bucket_ms, ttl_s)
        if routing_key != last_key:
            partitions += 1
            last_key = routing_key
            replica = primary_of(routing_key)
        nbytes = len(statement)
        _add(_slot_for(filling, batches, replica, routing_key, nbytes, batch_rows, batch_bytes, new_batch),
             query_id, values, statement, nbytes)
    return batches, partitions
