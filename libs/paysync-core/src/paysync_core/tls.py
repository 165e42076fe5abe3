"""One TLS context per process for the outbound HTTP clients.

httpx builds a new `ssl.SSLContext` for every client it is not given one, and building one loads the
whole CA bundle: 20-45 ms of CPU on this kind of machine, paid per tenant's gateway client and, where a
client lives for one request, per request. A context is safe to share between clients and tasks.
"""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def client_tls() -> ssl.SSLContext:
    """The context every outbound client verifies servers with: the one httpx would build (its CA
    bundle, or `SSL_CERT_FILE`/`SSL_CERT_DIR` when set), built once."""
    return httpx.create_ssl_context()
