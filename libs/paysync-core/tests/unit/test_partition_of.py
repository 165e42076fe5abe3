"""`send_many` places each record where aiokafka's producer (`send`) does: the same murmur2, partition."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given
from hypothesis import strategies as st

from paysync_core.kafka import murmur2, partition_of


@given(st.binary(max_size=300))
def test_murmur2_is_aiokafkas(key: bytes) -> None:
    assert murmur2(key) == aiokafka_murmur2(key)


@given(st.binary(max_size=120), st.integers(min_value=1, max_value=64))
def test_a_keyed_record_goes_to_the_partition_aiokafka_picks(key: bytes, count: int) -> None:
    partitions = list(range(count))
    assert partition_of(key, partitions) == DefaultPartitioner()(key, partitions, partitions)


def test_a_payment_key_keeps_its_partition() -> None:
    # Pinned: a change of hash would move payments to other partitions between two producers.
    assert murmur2(b"acme:stripe:cs_test_a1") == 1159691145
    assert partition_of(b"acme:stripe:cs_test_a1", list(range(12))) == 1159691145 % 12 == 9
    assert partition_of(None, [3]) == 3
