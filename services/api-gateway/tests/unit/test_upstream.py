"""The notifier's stream de-chunked: every complete chunk of a read relayed at once, nothing split or lost."""

from __future__ import annotations

from paysync_api_gateway.upstream import _complete_chunks, safe_header_value


def chunked(*pieces: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces)


def test_every_byte_boundary_of_a_chunked_body_yields_the_same_data_once() -> None:
    pieces = [b"id: 1\r\nevent: payment.status\r\ndata: {}\r\n\r\n", b": ping\r\n\r\n", b"x" * 300]
    body = chunked(*pieces) + b"0\r\n\r\n"
    for cut in range(len(body) + 1):
        first, left, ended = _complete_chunks(body[:cut])
        second, _, ended = (b"", b"", True) if ended else _complete_chunks(left + body[cut:])
        assert ended and first + second == b"".join(pieces)


def test_a_value_with_a_line_break_is_not_safe_for_a_header() -> None:
    assert safe_header_value("17.0.4") and not safe_header_value("1\r\nX-Injected: yes")
