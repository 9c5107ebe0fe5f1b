"""Offline token counts equal tiktoken's own, for every encoding we count with.

The reference is tiktoken itself: its own constructors in ``tiktoken_ext.openai_public`` (the
pattern, the special tokens, and the SHA-256 it pins for each file), fed the packaged file
through tiktoken's cache, with downloads made impossible. The file is accepted only if its hash
is the one tiktoken pins, i.e. the file OpenAI publishes. bpe-openai's own Rust tokenizer is
checked on the same corpus, so the two implementations agree with each other too.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
import sys
from importlib import resources

import bpe_openai
import pytest
import tiktoken
import tiktoken.load
from tiktoken_ext import openai_public

from tokenopt.counting import (
    CL100K,
    O200K,
    _encoding,
    count_messages,
    count_tokens,
    decode,
    encode,
    encoding_name,
)

# The URL tiktoken fetches each file from: the key of its cache entry. Never contacted here.
_FILE_URL = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"

CORPUS = [
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "Don't stop; it's what we'd've done. They'll say: \"no!\" (maybe?) -- or not...",
    "¡Hola! ¿Qué tal? Ça va, naïve café, Straße, smörgåsbord.",
    "1234567890 3.14159 -42 1e-9 $1,299.99 2026-01-31T23:59:59Z 0x1F 100%",
    "emoji: 😀👍🏽🚀 family 👨‍👩‍👧‍👦 flags 🇫🇷🇯🇵 ❤️",
    "日本語のテキストを数えます。中文文本，标点符号。한국어 문장입니다.",
    "Русский текст, ελληνικά, العربية، עברית, हिन्दी, ไทย",
    "spaces:" + " " * 40 + "end\ttabs\t\t\tand\n\n\n\nnewlines\r\n\r\n" + " " * 7 + "\n",
    " leading and trailing   ",
    "",
    json.dumps(
        {
            "client": {"fullName": "Maya Okafor", "age": 29, "tags": ["skincare", "clean beauty"]},
            "budget": {"dollars": 2.5, "tokens": 1_000_000, "paused": False, "note": None},
        },
        indent=2,
    ),
    json.dumps({"k": "v", "nested": [1, 2, {"x": "üñï"}]}, separators=(",", ":")),
    "def f(x):\n    return {'a': [x ** 2 for x in range(10)]}  # code\n",
    "<|endoftext|> special tokens are counted as plain text <|endofprompt|>",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!!!!!!!!!!??????",
]


def _packaged_file(name: str) -> bytes:
    gz = resources.files("bpe_openai.data").joinpath(f"{name}.tiktoken.gz").read_bytes()
    return gzip.decompress(gz)


@pytest.fixture(scope="module", params=[O200K, CL100K])
def reference(request, tmp_path_factory) -> tiktoken.Encoding:
    """tiktoken's own constructor for the encoding, reading only the packaged file."""
    name = request.param
    cache_dir = tmp_path_factory.mktemp(f"tiktoken-cache-{name}")
    url = _FILE_URL.format(name=name)
    (cache_dir / hashlib.sha1(url.encode()).hexdigest()).write_bytes(_packaged_file(name))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TIKTOKEN_CACHE_DIR", str(cache_dir))

        # tiktoken reads a cached file only if its hash is the pinned one; else it downloads.
        def no_download(blobpath: str) -> bytes:
            raise AssertionError(f"tiktoken refused the packaged file and tried {blobpath}")

        mp.setattr(tiktoken.load, "read_file", no_download)
        return tiktoken.Encoding(**getattr(openai_public, name)())


def test_the_encoding_is_tiktokens_own(reference):
    ours = _encoding(reference.name)
    assert ours._pat_str == reference._pat_str
    assert ours._special_tokens == reference._special_tokens
    assert ours._mergeable_ranks == reference._mergeable_ranks
    assert ours.n_vocab == reference.n_vocab


def test_offline_counts_equal_tiktoken_on_the_corpus(reference):
    ours = _encoding(reference.name)
    rust = bpe_openai.get_encoding(reference.name)
    for text in CORPUS:
        expected = reference.encode(text, disallowed_special=())
        assert ours.encode(text, disallowed_special=()) == expected, text
        assert rust.encode_ordinary(text) == reference.encode_ordinary(text), text
        assert reference.decode(expected) == text


def test_each_model_counts_with_its_own_encoding():
    assert {encoding_name(m) for m in ("gpt-4.1", "gpt-4.1-nano", "gpt-4o-mini", "gpt-5", "o3")} == {O200K}
    assert encoding_name("gpt-oss-20b") == O200K  # o200k_harmony: o200k_base plus special tokens
    assert {encoding_name(m) for m in ("gpt-4", "gpt-3.5-turbo")} == {CL100K}
    assert encoding_name("gemma-3-270m-it") == CL100K  # unknown to tiktoken
    # The same text, two encodings: the ids tiktoken gives online for gpt-4o and gpt-4 (quoted in
    # many tiktoken examples; CORPUS[0] also checks them against the reference above).
    assert encode("Hello, world!", "gpt-4.1") == [13225, 11, 2375, 0]
    assert encode("Hello, world!", "gpt-4") == [9906, 11, 1917, 0]
    text = CORPUS[6]
    assert count_tokens(text, "gpt-4.1") < count_tokens(text, "gpt-4")  # o200k is denser on CJK
    assert decode(encode(text, "gpt-5"), "gpt-5") == text
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]
    assert count_messages(messages, "gpt-4.1") == 3 + 3 + 3 + count_tokens("Be brief.") + count_tokens(text)


def test_counting_works_with_the_network_unreachable(tmp_path):
    code = (
        "import socket\n"
        "def refuse(*a, **k): raise OSError('network unreachable (test)')\n"
        "socket.socket.connect = refuse; socket.create_connection = refuse; socket.getaddrinfo = refuse\n"
        "from tokenopt.counting import encode, encoding_name\n"
        "print(encoding_name('gpt-4o'), encode('Hello, world!', 'gpt-4.1'), encode('Hello, world!', 'gpt-4'))\n"
    )
    # An empty cache directory: nothing tiktoken could have downloaded before.
    env = {"TIKTOKEN_CACHE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "o200k_base [13225, 11, 2375, 0] [9906, 11, 1917, 0]"
    assert out.stderr == ""  # no fallback warning any more
    assert list(tmp_path.iterdir()) == []
