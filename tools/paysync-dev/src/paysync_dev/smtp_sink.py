"""A real SMTP server for tests (aiosmtpd) on 127.0.0.1 and a free port, keeping what it receives.

`stop()` and `start()` take it down and bring it back on the same port: the "SMTP server down"
of a test. `require_login` and `require_tls` (STARTTLS, or TLS from the first byte) make it the kind
of server production sends through. Messages are parsed into `email.message.EmailMessage`, in
arrival order.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import ssl
import time
import warnings
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from paysync_dev.stack import free_port


class _Keep:
    """aiosmtpd handler: parse each message and keep it with its envelope recipients."""

    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # aiosmtpd's hook name
        # The default policy's parser makes EmailMessage objects (get_body, get_content).
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self._sink.messages.append(message)
        self._sink.recipients.append(list(envelope.rcpt_tos))
        return "250 Message accepted for delivery"


class SmtpSink:
    """An SMTP server on `host:port` that accepts every message into `messages`."""

    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self.messages: list[EmailMessage] = []
        self.recipients: list[list[str]] = []
        self.logins: list[str] = []  # the user names that logged in
        self._login: tuple[str, str] | None = None
        self._tls: tuple[ssl.SSLContext, bool] | None = None  # (context, implicit)
        self._controller: Controller | None = None

    def start(self) -> None:
        """Listen (again) on the same port."""
        if self._controller is None:
            options: dict[str, Any] = {}
            if self._tls is not None:
                context, implicit = self._tls
                options = (
                    {"ssl_context": context}
                    if implicit
                    else {"tls_context": context, "require_starttls": True}
                )
            if self._login is not None:
                # Without TLS, plain-text AUTH is fine on loopback in a test; with STARTTLS, AUTH is
                # refused until the upgrade (aiosmtpd cannot see implicit TLS, so it is not asked to check).
                starttls = self._tls is not None and not self._tls[1]
                options |= {
                    "authenticator": self._authenticate,
                    "auth_required": True,
                    "auth_require_tls": starttls,
                }
            self._controller = Controller(_Keep(self), hostname=self.host, port=self.port, **options)
            self._controller.start()

    def require_login(self, user: str, password: str) -> None:
        """From now on, accept mail only after AUTH with this user and password."""
        # aiosmtpd warns on each connection that AUTH without TLS is unsafe: true, and meant here.
        warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS", UserWarning)
        self.stop()
        self._login = (user, password)
        self.start()

    def require_tls(self, context: ssl.SSLContext, *, implicit: bool = False) -> None:
        """From now on, speak TLS: STARTTLS before anything else, or (`implicit`) TLS from the first byte."""
        self.stop()
        self._tls = (context, implicit)
        self.start()

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        if isinstance(data, LoginPassword) and (data.login.decode(), data.password.decode()) == self._login:
            self.logins.append(data.login.decode())
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    def stop(self) -> None:
        """Stop listening: connections are refused until `start()`."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def text_of(self, message: EmailMessage) -> str:
        """The plain-text part of a received message."""
        part = message.get_body(preferencelist=("plain",))
        return part.get_content() if part is not None else ""

    async def wait_for(self, predicate: Callable[[list[EmailMessage]], bool], timeout: float = 60.0) -> None:
        """Wait until `predicate(messages)` holds; fail after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not predicate(list(self.messages)):
            if time.monotonic() > deadline:
                subjects = [m["Subject"] for m in self.messages]
                raise AssertionError(f"SMTP sink: condition not met after {timeout}s; received {subjects}")
            await asyncio.sleep(0.1)
