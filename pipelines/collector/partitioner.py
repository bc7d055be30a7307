"""The partition of a keyed record, as kafka-python's default partitioner picks it, for less CPU.

kafka-python hashes every key with a pure-Python murmur2 written as Java's (~7 us for a UUID):
a fifth of the collector's CPU per event. The same hash is computed here on 32-bit words unpacked
at once, and remembered per key: a browser's batch carries one anonymousId many times, and a
visitor comes back. The collector then passes the partition to `send`, so the mapping, and with it
the order of one visitor's events within one partition, is the one kafka-python would choose
(`tests/collector/test_partitioner.py` compares them).
"""

from __future__ import annotations

import struct
from functools import lru_cache

_MASK = 0xFFFFFFFF
_SEED = 0x9747B28C
_M = 0x5BD1E995

# distinct keys remembered; ~150 bytes each, so a few MB at most
CACHED_KEYS = 1 << 15


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 of `data`, unsigned 32 bits (equal to kafka.partitioner.default.murmur2)."""
    length = len(data)
    h = _SEED ^ length
    words = length >> 2
    for k in struct.unpack_from(f"<{words}I", data):
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = length & 3
    if tail:
        at = words << 2
        if tail == 3:
            h ^= data[at + 2] << 16
        if tail >= 2:
            h ^= data[at + 1] << 8
        h ^= data[at]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


@lru_cache(maxsize=CACHED_KEYS)
def _positive_hash(key: bytes) -> int:
    return murmur2(key) & 0x7FFFFFFF


def partition_for(key: bytes, partitions: list[int]) -> int:
    """The partition of `key` among `partitions` (sorted), as kafka-python's DefaultPartitioner
    chooses it for a keyed record."""
    return partitions[_positive_hash(key) % len(partitions)]
