"""Encryption at rest for tenants' gateway credentials, with key rotation (Fernet)."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from paysync_core.credentials import GatewayCredentials
from paysync_core.errors import PaysyncError


class CredentialsKeyError(PaysyncError):
    """No key, or no key that opens the stored credentials."""

    code = "credentials_key"


class CredentialsCipher:
    """Encrypts with the first key; decrypts with any, so keys rotate without downtime."""

    def __init__(self, keys: str) -> None:
        parts = [k.strip() for k in keys.split(",") if k.strip()]
        if not parts:
            raise CredentialsKeyError("PAYSYNC_CREDENTIALS_KEYS is empty: no key to encrypt with")
        self._fernet = MultiFernet([Fernet(k.encode()) for k in parts])

    @staticmethod
    def new_key() -> str:
        """A fresh random key, for set-up and rotation."""
        return Fernet.generate_key().decode()

    def encrypt(self, credentials: GatewayCredentials) -> bytes:
        """Ciphertext of the credentials under the newest key."""
        return self._fernet.encrypt(credentials.to_plain_json().encode())

    def decrypt(self, token: bytes) -> GatewayCredentials:
        """The credentials behind a ciphertext made with any configured key."""
        try:
            return GatewayCredentials.model_validate_json(self._fernet.decrypt(token))
        except InvalidToken as exc:
            raise CredentialsKeyError("no configured key decrypts these credentials") from exc

    def encrypt_text(self, plain: str) -> bytes:
        """Ciphertext of other secrets kept with a tenant (alert channels' URLs and signing secrets)."""
        return self._fernet.encrypt(plain.encode())

    def decrypt_text(self, token: bytes) -> str:
        """The text behind a ciphertext of `encrypt_text`."""
        try:
            return self._fernet.decrypt(token).decode()
        except InvalidToken as exc:
            raise CredentialsKeyError("no configured key decrypts these secrets") from exc

    def rotate(self, token: bytes) -> bytes:
        """Re-encrypt under the newest key."""
        return self._fernet.rotate(token)
