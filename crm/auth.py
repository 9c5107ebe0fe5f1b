"""Bearer tokens: the API token on every /api/v1 route and on the dashboard's data, and the
optional metrics token on /metrics.

Without a configured API token the API serves the loopback interface only (a developer's
machine); anything reachable from elsewhere must have one.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class MissingApiToken(ValueError):
    pass


def token_value(token: SecretStr | None) -> str | None:
    """The configured token, or None when unset or blank."""
    value = token.get_secret_value().strip() if token is not None else ""
    return value or None


def check_bind(token: SecretStr | None, host: str) -> None:
    """Refuse to serve the API beyond the loopback interface without a token."""
    if token_value(token) is None and host not in LOOPBACK_HOSTS:
        raise MissingApiToken(
            f"refusing to serve the API on {host} without a token: set WAVELAUNCH_API_TOKEN "
            "(clients send `Authorization: Bearer <token>`), or bind to 127.0.0.1 (--host 127.0.0.1)"
        )


def bearer_matches(given: str | None, expected: str) -> bool:
    """Whether ``given`` (the token a request sent) is ``expected``, compared in constant time."""
    return hmac.compare_digest((given or "").encode(), expected.encode())


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None."""
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


_bearer = HTTPBearer(auto_error=False, description="WAVELAUNCH_API_TOKEN")


def bearer_guard(token: str | None) -> Callable[..., Awaitable[None]]:
    """A FastAPI dependency: 401 unless the request carries ``Authorization: Bearer <token>``
    (compared in constant time). ``None``: no token configured, every request passes."""

    # HTTPBearer also declares the scheme in the OpenAPI document ("Authorize" in the docs page).
    async def require_token(credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> None:
        if not token:
            return
        if not bearer_matches(credentials.credentials if credentials else None, token):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail="missing or wrong API token: send `Authorization: Bearer <WAVELAUNCH_API_TOKEN>`",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return require_token
