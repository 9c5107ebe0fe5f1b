"""The API token rules: no token means loopback only; the bearer check compares the whole token."""

from __future__ import annotations

import pytest
from fastapi import HTTPException
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import SecretStr

from crm.auth import MissingApiToken, bearer_guard, bearer_matches, bearer_token, check_bind, token_value


@pytest.mark.parametrize("token", [None, SecretStr(""), SecretStr("   ")])
def test_without_a_token_the_api_refuses_any_address_but_loopback(token):
    for host in ("127.0.0.1", "localhost", "::1"):
        check_bind(token, host)
    for host in ("0.0.0.0", "10.1.2.3", "::"):
        with pytest.raises(MissingApiToken, match="WAVELAUNCH_API_TOKEN.*127.0.0.1"):
            check_bind(token, host)


def test_with_a_token_any_address_is_fine():
    check_bind(SecretStr("s3cret"), "0.0.0.0")
    assert token_value(SecretStr(" s3cret ")) == "s3cret"


async def test_the_guard_wants_exactly_the_token():
    guard = bearer_guard("s3cret")
    await guard(HTTPAuthorizationCredentials(scheme="Bearer", credentials="s3cret"))
    for wrong in (
        None,
        HTTPAuthorizationCredentials(scheme="Bearer", credentials="s3cre"),
        HTTPAuthorizationCredentials(scheme="Bearer", credentials="s3cret2"),
    ):
        with pytest.raises(HTTPException) as refused:
            await guard(wrong)
        assert refused.value.status_code == 401
    await bearer_guard(None)(None)  # no token configured: loopback-only mode lets every request in


def test_the_metrics_token_is_read_from_a_bearer_header_only():
    assert bearer_token("Bearer s3cret") == "s3cret"
    assert bearer_token("bearer  s3cret ") == "s3cret"
    for header in (None, "", "s3cret", "Basic s3cret", "Bearers3cret"):
        assert bearer_token(header) is None
    assert bearer_matches("s3cret", "s3cret")
    for wrong in (None, "", "s3cre", "s3cret2", "S3CRET"):
        assert not bearer_matches(wrong, "s3cret")
