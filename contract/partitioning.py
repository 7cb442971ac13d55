"""Which partition a merchant's records are on: Kafka's default partitioner for a ``merchant_id`` key.

The inputs, warnings and feedback topics are co-partitioned by ``merchant_id``, and a replay
groups records the way the broker does, so that each partition's watermark (and hence every
warning) is the same offline as live. The hash is Kafka's ``Utils.murmur2`` (the Java client's
default partitioner, which kafka-python and aiokafka copy); it is written out here so that the
pure engine needs no Kafka client, and ``tests/test_contract.py`` checks it against
kafka-python's on many keys.
"""

from __future__ import annotations

from functools import lru_cache

_SEED = 0x9747B28C
_M = 0x5BD1E995  # mixing constants of MurmurHash2
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """MurmurHash2 as Kafka computes it (unsigned 32 bits).

    >>> murmur2(b"21")  # Kafka's own test vector: -973932308 as a Java int
    3321034988
    """
    length = len(data)
    h = (_SEED ^ length) & _MASK
    whole = length - length % 4
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = length % 4
    if tail == 3:
        h ^= data[whole + 2] << 16
    if tail >= 2:
        h ^= data[whole + 1] << 8
    if tail >= 1:
        h ^= data[whole]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


@lru_cache(maxsize=1 << 16)  # a replay asks once per record, for a few thousand merchants
def partition_for(merchant_id: str, partitions: int) -> int:
    """Kafka's default partition for a ``merchant_id`` key.

    >>> partition_for("m-0001", 6) == partition_for("m-0001", 6)
    True
    >>> 0 <= partition_for("91310120MA1FL0001X", 12) < 12
    True
    """
    return (murmur2(merchant_id.encode("utf-8")) & 0x7FFFFFFF) % partitions
