"""The CRM's webhook signature: ``X-Webhook-Signature: sha256=<hex HMAC-SHA256 of the raw body>``."""

from __future__ import annotations

import hashlib
import hmac

PREFIX = "sha256="


def sign(body: bytes, secret: str) -> str:
    return PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def valid(body: bytes, header: str | None, secret: str) -> bool:
    """Constant-time check of the header against the body's HMAC."""
    if not header or not header.startswith(PREFIX):
        return False
    return hmac.compare_digest(header.encode(), sign(body, secret).encode())
