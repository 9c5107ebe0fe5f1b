"""One place that decides which LLM failures are worth retrying.

Temporal owns retries (the client runs with ``max_retries=0``), so every OpenAI error is turned
into an ``LLMError`` that says whether retrying can help and how long the server asked us to wait.
"""

from __future__ import annotations

import openai

RETRYABLE_STATUS = frozenset({408, 409, 429})

# Kinds of failure no retry can fix (the key, the model or the request itself is wrong): the
# LLMErrors raised with retryable=False; activities.errors lists them for the retry policies.
AUTHENTICATION_ERROR = "LLMAuthenticationError"
PERMISSION_DENIED = "LLMPermissionDenied"
MODEL_NOT_FOUND = "LLMModelNotFound"
BAD_REQUEST = "LLMBadRequest"
FINAL_KINDS = (AUTHENTICATION_ERROR, PERMISSION_DENIED, MODEL_NOT_FOUND, BAD_REQUEST)
# The Batch API's batch or file is not there (llm.batch_api): final for the batch steps.
BATCH_NOT_FOUND = "LLMBatchNotFound"


class LLMError(Exception):
    """A failed LLM call; ``kind`` becomes the Temporal ApplicationError type."""

    def __init__(self, kind: str, message: str, *, retryable: bool, retry_after: float | None = None):
        super().__init__(message)
        self.kind = kind
        self.retryable = retryable
        self.retry_after = retry_after


class InvalidModelOutput(LLMError):
    """The model answered, but not with JSON matching the section's schema."""

    def __init__(self, message: str):
        super().__init__("InvalidModelOutput", message, retryable=True)


def _retry_after(err: openai.APIStatusError) -> float | None:
    headers = err.response.headers
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    if (seconds := headers.get("retry-after")) is not None:
        try:
            return float(seconds)
        except ValueError:
            return None  # an HTTP date: let the retry policy's backoff decide
    return None


def call_timed_out(endpoint: str, seconds: float, max_completion_tokens: int | None = None) -> LLMError:
    """A call abandoned at its timeout: retryable (a hung or overloaded server may answer next time)."""
    asked = f" for an answer of up to {max_completion_tokens} tokens" if max_completion_tokens is not None else ""
    return LLMError(
        "LLMTimeout",
        f"no answer from {endpoint} within {seconds:.0f} s{asked} (WAVELAUNCH_LLM_TIMEOUT_* settings)",
        retryable=True,
    )


def map_openai_error(err: Exception, *, model: str, endpoint: str, timeout: float | None = None) -> LLMError:
    """Translate an ``openai`` exception into a retryable or final LLMError."""
    if isinstance(err, openai.APITimeoutError):
        if timeout is not None:
            return call_timed_out(endpoint, timeout)
        return LLMError("LLMTimeout", f"request to {endpoint} timed out", retryable=True)
    if isinstance(err, openai.APIConnectionError):
        return LLMError("LLMUnavailable", f"cannot reach {endpoint}: {err}", retryable=True)
    if isinstance(err, openai.AuthenticationError):
        return LLMError(
            AUTHENTICATION_ERROR,
            f"OPENAI_API_KEY rejected by {endpoint} (401); set a valid key",
            retryable=False,
        )
    if isinstance(err, openai.PermissionDeniedError):
        return LLMError(
            PERMISSION_DENIED,
            f"the API key may not use model {model!r} at {endpoint} (403)",
            retryable=False,
        )
    if isinstance(err, openai.NotFoundError):
        return LLMError(
            MODEL_NOT_FOUND,
            f"model not found: {model!r} at {endpoint}; check WAVELAUNCH_MODEL_* settings",
            retryable=False,
        )
    if isinstance(err, openai.APIStatusError):
        status = err.status_code
        detail = getattr(err, "message", str(err))
        if status in RETRYABLE_STATUS or status >= 500:
            kind = "LLMRateLimited" if status == 429 else "LLMServerError"
            return LLMError(
                kind,
                f"{endpoint} answered {status}: {detail}",
                retryable=True,
                retry_after=_retry_after(err),
            )
        return LLMError(BAD_REQUEST, f"{endpoint} refused the request ({status}): {detail}", retryable=False)
    return LLMError("LLMError", f"{type(err).__name__}: {err}", retryable=True)
