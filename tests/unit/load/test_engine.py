"""edgeinfer_load.engine: HTTP/1.1 framing the event loop decodes."""

from __future__ import annotations

import pytest

from edgeinfer_load.engine import _chunked_body


@pytest.mark.parametrize(
    ("raw", "body"),
    [
        (b"4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n", b"Wikipedia"),
        (b"4\r\nWiki\r\n5\r\nped", None),
        (b"0\r\n\r\n", b""),
        (b"a;ext=1\r\n0123456789\r\n0\r\n\r\n", b"0123456789"),
    ],
)
def test_chunked_body(raw, body):
    assert _chunked_body(bytearray(b"HEAD" + raw), 4) == body
