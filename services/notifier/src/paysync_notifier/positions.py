"""Live-stream event ids: a client's position in `paysync.payment-status.v1`, one offset per partition.

Every notifier replica reads every partition of the topic itself (no consumer group), so a record
sits at the same (partition, offset) for all of them and for every process they are restarted
as. An event id names, for each partition, the offset of the next record the client has not
seen yet; resuming from it, on any replica and after any restart, serves exactly the records
after it. Per-payment order holds because one payment's changes share a key, hence a partition.

The id is the offsets in partition order, joined by dots (`"17.0.4.…"`): short enough for a
header, and readable when an operator looks at one.
"""

from __future__ import annotations

from collections.abc import Mapping

#: Partition -> offset of the next record not yet sent to the client.
Position = dict[int, int]

#: Offsets a position may name: more partitions than this is not an id we made.
_MAX_PARTITIONS = 1024


class UnknownPosition(ValueError):
    """A `Last-Event-ID` that is not an event id of this stream."""


def encode_position(position: Mapping[int, int]) -> str:
    """The event id of a position (partitions it does not name count as offset 0)."""
    if not position:
        return "0"
    return ".".join(str(position.get(p, 0)) for p in range(max(position) + 1))


def decode_position(event_id: str) -> Position:
    """The position an event id names; `UnknownPosition` for anything else."""
    parts = event_id.strip().split(".")
    if len(parts) > _MAX_PARTITIONS or not all(part.isascii() and part.isdigit() for part in parts):
        raise UnknownPosition("not a live-stream event id")
    return {partition: int(offset) for partition, offset in enumerate(parts)}


class EventIds:
    """A client's event ids as its position moves one offset at a time: `encode_position`, kept current.

    A stream sends an id with every event; re-encoding every partition each time cost more than
    the event itself once each change goes to many clients.
    """

    def __init__(self, position: Mapping[int, int]) -> None:
        self._parts = encode_position(position).split(".")

    def after(self, partition: int, offset: int) -> str:
        """The id once the client's position in `partition` is `offset`."""
        parts = self._parts
        if partition >= len(parts):
            parts.extend("0" * (partition + 1 - len(parts)))
        parts[partition] = str(offset)
        return ".".join(parts)
