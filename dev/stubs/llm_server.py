"""A deterministic OpenAI-compatible HTTP stub for end-to-end tests and the cost benchmark.

It speaks enough of the real wire format for the official ``openai`` client to parse its answers
(``/v1/chat/completions``, ``/v1/embeddings``, ``/v1/models``, and the Batch API in
``stubs.batches``), and it is honest about tokens:

* Every answer to a section has the same size whatever the prompt (DESIGN.md §7), so no
  benchmark arm can win by making the model answer shorter.
* A batch of sections (schema ``section_batch_v1``, one property per member section) is answered
  with each member padded to its own target; a fault naming a member spoils only its part.
* ``usage`` counts the prompt as the stub renders it (schema JSON first, then each message's
  role and content) and mimics OpenAI's automatic prefix cache (>= 1024 tokens, 128-token steps,
  evicted after ``CACHE_IDLE_SECONDS`` unused, on a clock benchmarks may simulate).

Tests steer it through control endpoints under ``/_stub`` (fault injection, request log, reset).

``service_tier="flex"`` is answered as OpenAI's flex processing is: the same answer, more slowly
(``flex_slowdown`` times the simulated generation time), with ``service_tier`` echoed in the
response; a ``resource_unavailable`` fault refuses flex requests with OpenAI's 429.
Auth (``api_key``) and the model allowlist (``models``) apply to every ``/v1`` endpoint, the
embeddings model included; ``/_stub`` needs no key.
Run it in-process with :class:`StubServer` or as a process with ``python -m stubs.llm_server``.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import base64
import contextlib
import copy
import hashlib
import json
import math
import random
import re
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from domain.catalogue import deliverables, summaries
from domain.catalogue.plan import section
from domain.outputs.schemas import GROUP_SCHEMA_KEY, PATCH_SCHEMA_KEY
from domain.sections import UnknownSection
from stubs.batches import ROUTES as BATCH_ROUTES
from stubs.batches import BatchStore, parse_batch_fault
from tokenopt.counting import count_messages, count_tokens, decode, encode

DEFAULT_TARGET_TOKENS = 200
TARGET_HEADER = "x-stub-target-tokens"
DEFAULT_MODELS: tuple[str, ...] = (
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-5",
    "gpt-5-mini",
    "gpt-5-nano",
    "text-embedding-3-small",
    "text-embedding-3-large",
)
# What OpenAI accepts as ``service_tier``; the response names the tier that served ("auto" and
# "default" are served as "default").
SERVICE_TIERS: tuple[str, ...] = ("auto", "default", "flex", "scale", "priority")
FLEX = "flex"
# Flex processing answers more slowly than standard: this many times the simulated generation
# time (``latency_per_completion_token``), unless configured otherwise.
DEFAULT_FLEX_SLOWDOWN = 3.0
DEFAULT_EMBEDDING_DIMENSIONS = 256
MAX_EMBEDDING_DIMENSIONS = 4096

# OpenAI's prefix cache: prompts of at least 1024 tokens, hits grow in 128-token steps.
CACHE_MIN_TOKENS = 1024
CACHE_STEP_TOKENS = 128
# A cached prefix is evicted after this long unused (OpenAI: "typically 5-10 minutes of
# inactivity"; the generous end, so a baseline that leans on the cache is not short-changed).
CACHE_IDLE_SECONDS = 600.0

# Filler vocabulary: each word is one token after a space in cl100k_base and o200k_base, so the
# padding loop converges in two or three rounds.
FILLER_WORDS: tuple[str, ...] = (
    "market",
    "growth",
    "brand",
    "customer",
    "value",
    "plan",
    "sales",
    "team",
    "product",
    "price",
    "quality",
    "service",
    "launch",
    "channel",
    "revenue",
    "cost",
    "margin",
    "strategy",
    "focus",
    "design",
    "support",
    "online",
    "retail",
    "partner",
    "community",
    "content",
    "social",
    "premium",
    "local",
    "global",
    "audience",
    "trend",
    "demand",
    "supply",
    "story",
    "season",
    "style",
    "studio",
    "offer",
    "digital",
    "network",
    "profit",
    "target",
    "region",
    "test",
    "data",
    "insight",
    "goal",
    "budget",
    "store",
)
_MAX_FIT_ROUNDS = 8
_MAX_SCHEMA_DEPTH = 12
_SCHEMA_NAME = re.compile(r"^(?P<key>.+)_v\d+$")
_JSON = dict[str, Any]
# Formatted strings get a fixed valid value; padding goes into free text only.
_FORMATTED_STRINGS = {
    "date": "2025-01-15",
    "date-time": "2025-01-15T09:00:00Z",
    "email": "founder@example.com",
    "uri": "https://example.com",
    "uuid": "00000000-0000-4000-8000-000000000000",
}


# --------------------------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------------------------


class BadRequest(ValueError):
    """A request the real API would reject with 400 invalid_request_error."""


@dataclass(frozen=True)
class ChatRequest:
    """The parts of a chat completion request the stub acts on; everything else is ignored."""

    model: str
    messages: tuple[tuple[str, str], ...]  # (role, text content)
    response_type: Literal["json_schema", "json_object", "text"]
    schema_name: str | None
    schema: _JSON | None
    max_tokens: int | None
    prompt_cache_key: str | None
    # As asked ("auto", "default", "flex", ...); None when the request did not say.
    service_tier: str | None = None

    @property
    def section(self) -> str | None:
        """The section key derived from the schema name (``market_analysis_v1`` -> key)."""
        return section_from_schema_name(self.schema_name) if self.schema_name else None

    @property
    def batch_members(self) -> tuple[str, ...]:
        """The member section keys of a batch request (one schema property per member), else ()."""
        if self.section != GROUP_SCHEMA_KEY or self.schema is None:
            return ()
        return tuple(self.schema.get("properties") or ())

    def message_dicts(self) -> list[dict[str, str]]:
        return [{"role": role, "content": content} for role, content in self.messages]


def section_from_schema_name(name: str) -> str:
    """``<section_key>_v<N>`` -> ``section_key``; any other name is returned unchanged."""
    match = _SCHEMA_NAME.match(name)
    return match.group("key") if match else name


def _message_text(content: Any) -> str:
    """Message content as text: a string, or the text parts of a multi-part content list."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    raise BadRequest("'content' must be a string or a list of content parts")


def _optional_int(body: _JSON, name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise BadRequest(f"'{name}' must be a positive integer")
    return value


def parse_chat_request(body: Any) -> ChatRequest:
    """Validate a ``/v1/chat/completions`` body; raises :class:`BadRequest`."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("'model' is a required string")
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise BadRequest("'messages' must be a non-empty list")
    messages = []
    for message in raw_messages:
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise BadRequest("each message needs a string 'role'")
        messages.append((message["role"], _message_text(message.get("content"))))
    if body.get("stream"):
        raise BadRequest("the stub does not support 'stream': true")
    response_type, schema_name, schema = _parse_response_format(body.get("response_format"))
    limit = _optional_int(body, "max_completion_tokens") or _optional_int(body, "max_tokens")
    cache_key = body.get("prompt_cache_key")
    tier = body.get("service_tier")
    if tier is not None and tier not in SERVICE_TIERS:
        raise BadRequest(f"'service_tier' must be one of {', '.join(SERVICE_TIERS)}")
    return ChatRequest(
        model=model,
        messages=tuple(messages),
        response_type=response_type,
        schema_name=schema_name,
        schema=schema,
        max_tokens=limit,
        prompt_cache_key=cache_key if isinstance(cache_key, str) and cache_key else None,
        service_tier=tier,
    )


def _parse_response_format(
    response_format: Any,
) -> tuple[Literal["json_schema", "json_object", "text"], str | None, _JSON | None]:
    if response_format is None:
        return "text", None, None
    if not isinstance(response_format, dict):
        raise BadRequest("'response_format' must be an object")
    kind = response_format.get("type")
    if kind == "json_object":
        return "json_object", None, None
    if kind in (None, "text"):
        return "text", None, None
    if kind != "json_schema":
        raise BadRequest(f"unsupported response_format type {kind!r}")
    spec = response_format.get("json_schema")
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise BadRequest("'response_format.json_schema' needs a 'name'")
    schema = spec.get("schema")
    if not isinstance(schema, dict):
        raise BadRequest("'response_format.json_schema.schema' must be an object")
    return "json_schema", spec["name"], schema


def target_tokens(section_key: str | None, header_value: str | None) -> int:
    """Completion size for a request: the catalogue's target for a business-plan section or a
    deliverable section (named by key or, as schema names are, by kind) or a summary kind, else the
    ``X-Stub-Target-Tokens`` header, else ``DEFAULT_TARGET_TOKENS``."""
    if section_key is not None:
        for lookup in (section, deliverables.section_kind, deliverables.section_spec, summaries.spec):
            try:
                return lookup(section_key).target_tokens
            except UnknownSection:
                pass
    if header_value is not None:
        try:
            value = int(header_value)
        except ValueError:
            raise BadRequest(f"{TARGET_HEADER} must be an integer") from None
        if value < 1:
            raise BadRequest(f"{TARGET_HEADER} must be positive")
        return value
    return DEFAULT_TARGET_TOKENS


# --------------------------------------------------------------------------------------------
# Prompt accounting and the prefix cache
# --------------------------------------------------------------------------------------------


def schema_text(schema: _JSON) -> str:
    """The schema as the stub renders it at the head of the prompt (compact JSON)."""
    return json.dumps(schema, separators=(",", ":"), ensure_ascii=False)


def prompt_tokens(request: ChatRequest) -> int:
    """Billed prompt tokens: schema JSON (if any) plus the chat-format message count."""
    total = count_messages(request.message_dicts(), request.model)
    if request.schema is not None:
        total += count_tokens(schema_text(request.schema), request.model)
    return total


def rendered_prompt(request: ChatRequest) -> list[int]:
    """The prompt's tokens in cache order: schema first, then each message's role and content.

    Pieces are tokenized separately so an edit late in the prompt never changes the tokens of
    an earlier piece; the list is never longer than :func:`prompt_tokens` (roles are one token,
    the chat format bills three per message)."""
    tokens: list[int] = []
    if request.schema is not None:
        tokens += encode(schema_text(request.schema), request.model)
    for role, content in request.messages:
        tokens += encode(role, request.model)
        tokens += encode(content, request.model)
    return tokens


def prefix_digests(tokens: Sequence[int], scope: str) -> list[tuple[int, bytes]]:
    """Hashes of every cacheable prefix (1024, 1152, ... tokens) of ``tokens`` within ``scope``."""
    digest = hashlib.blake2b(scope.encode() + b"\0", digest_size=16)
    out: list[tuple[int, bytes]] = []
    start = 0
    for boundary in range(CACHE_MIN_TOKENS, len(tokens) + 1, CACHE_STEP_TOKENS):
        digest.update(array.array("I", tokens[start:boundary]).tobytes())
        start = boundary
        out.append((boundary, digest.copy().digest()))
    return out


def cache_scope(request: ChatRequest) -> str:
    """Where a prefix may be reused.

    Simplification of OpenAI's routing: a prefix hits only under the same model and the same
    ``prompt_cache_key`` (requests without a key share one scope). Real OpenAI routes by key
    but may still hit across keys; the stub never does, which keeps benchmark results exact."""
    return json.dumps([request.model, request.prompt_cache_key])


# --------------------------------------------------------------------------------------------
# Content generation: schema instances padded to the target size
# --------------------------------------------------------------------------------------------


@dataclass
class _Leaf:
    """A free-text string slot of the answer, grown or shrunk word by word."""

    words: list[str]
    prose: bool = False
    # From the schema's "at most N words" (e.g. a digest's decisions): padding never grows it past.
    max_words: int | None = None

    @property
    def full(self) -> bool:
        return self.max_words is not None and len(self.words) >= self.max_words

    def render(self) -> str:
        if not self.prose:
            return " ".join(self.words).capitalize()
        # Sentences of twelve words, paragraphs of five sentences: plausible prose shape.
        sentences = [" ".join(self.words[i : i + 12]).capitalize() + "." for i in range(0, len(self.words), 12)]
        paragraphs = [" ".join(sentences[i : i + 5]) for i in range(0, len(sentences), 5)]
        return "\n\n".join(paragraphs)


class _InstanceBuilder:
    """Builds a deterministic instance of a JSON schema with :class:`_Leaf` string slots."""

    def __init__(self, root: _JSON, rng: random.Random):
        self._root = root
        self._rng = rng
        self.leaves: list[_Leaf] = []

    def build(self, node: Any, depth: int = 0) -> Any:
        node = self._resolve(node)
        if "const" in node:
            return copy.deepcopy(node["const"])
        if node.get("enum"):
            return copy.deepcopy(self._rng.choice(node["enum"]))
        for combinator in ("anyOf", "oneOf", "allOf"):
            if node.get(combinator):
                return self.build(_prefer_non_null(node[combinator]), depth)
        kind = node.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind is None:
            kind = "object" if "properties" in node else "string"
        return self._build_typed(kind, node, depth)

    def _build_typed(self, kind: str, node: _JSON, depth: int) -> Any:
        if kind == "object":
            props = node.get("properties") or {}
            return {name: self.build(sub, depth + 1) for name, sub in props.items()}
        if kind == "array":
            count = self._array_length(node, depth)
            items = self._resolve(node.get("items", {}))
            if (limit := _word_limit(node)) is not None and "description" not in items:
                items = {**items, "description": f"at most {limit} words"}  # "each at most N words"
            return [self.build(items, depth + 1) for _ in range(count)]
        if kind == "string":
            return self._string(node)
        if kind == "integer":
            return self._rng.randint(int(node.get("minimum", 1)), int(node.get("maximum", 100)))
        if kind == "number":
            low, high = float(node.get("minimum", 1)), float(node.get("maximum", 1000))
            return round(self._rng.uniform(low, high), 2)
        if kind == "boolean":
            return self._rng.random() < 0.5
        return None

    def _array_length(self, node: _JSON, depth: int) -> int:
        low = int(node.get("minItems", 0))
        if depth >= _MAX_SCHEMA_DEPTH:  # recursive schemas: stop growing
            return low
        high = int(node.get("maxItems", max(4, low)))
        return min(max(self._rng.randint(2, 4), low), high)

    def _string(self, node: _JSON) -> Any:
        if node.get("format") in _FORMATTED_STRINGS:
            return _FORMATTED_STRINGS[node["format"]]
        limit = _word_limit(node)
        words = _words(self._rng, self._rng.randint(2, 4))
        leaf = _Leaf(words[:limit] if limit else words, max_words=limit)
        self.leaves.append(leaf)
        return leaf

    def _resolve(self, node: Any) -> _JSON:
        seen = 0
        while isinstance(node, dict) and isinstance(node.get("$ref"), str):
            node = self._follow(node["$ref"])
            seen += 1
            if seen > 32:
                raise BadRequest("circular $ref in json_schema")
        return node if isinstance(node, dict) else {}

    def _follow(self, ref: str) -> Any:
        if not ref.startswith("#"):
            raise BadRequest(f"only local $ref is supported, got {ref!r}")
        node: Any = self._root
        for part in filter(None, ref[1:].split("/")):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, dict) or part not in node:
                raise BadRequest(f"unresolvable $ref {ref!r}")
            node = node[part]
        return node


_WORD_LIMIT = re.compile(r"at most (\d+) words")


def _word_limit(node: _JSON) -> int | None:
    """The "at most N words" a schema node's description asks for, as a real model would honour."""
    match = _WORD_LIMIT.search(str(node.get("description") or ""))
    return max(1, int(match.group(1))) if match else None


def _prefer_non_null(options: list[Any]) -> Any:
    return next((o for o in options if not (isinstance(o, dict) and o.get("type") == "null")), options[0])


def _words(rng: random.Random, n: int) -> list[str]:
    return [rng.choice(FILLER_WORDS) for _ in range(n)]


def _render(value: Any) -> Any:
    if isinstance(value, _Leaf):
        return value.render()
    if isinstance(value, dict):
        return {k: _render(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_render(v) for v in value]
    return value


def _dump(tree: Any, raw_text: bool) -> str:
    rendered = _render(tree)
    return rendered if raw_text else json.dumps(rendered, ensure_ascii=False)


def _pad(tree: Any, leaves: list[_Leaf], target: int, model: str, rng: random.Random, raw_text: bool = False) -> str:
    """Grow or shrink the leaves round-robin until the rendered text has ``target`` tokens.

    Filler words are ~1 token each, so a few rounds land on the target exactly; when the
    schema's smallest instance is already larger than the target, the smallest is returned."""
    text = _dump(tree, raw_text)
    cursor = 0
    for _ in range(_MAX_FIT_ROUNDS):
        # encode(), not count_tokens(): intermediate drafts must not fill the count cache.
        diff = target - len(encode(text, model))
        if diff == 0 or not leaves:
            break
        if diff > 0:
            cursor = _grow(leaves, diff, cursor, rng)
            if cursor is None:
                break  # every leaf is at its word limit
        elif not _shrink(leaves, -diff):
            break
        text = _dump(tree, raw_text)
    return text


def _grow(leaves: list[_Leaf], n: int, cursor: int, rng: random.Random) -> int | None:
    """Add ``n`` words round-robin from ``cursor``, skipping leaves at their word limit; the
    next cursor, or None when no leaf can grow."""
    added = 0
    while added < n:
        if all(leaf.full for leaf in leaves):
            return None
        leaf = leaves[cursor % len(leaves)]
        cursor = (cursor + 1) % len(leaves)
        if not leaf.full:
            leaf.words.append(rng.choice(FILLER_WORDS))
            added += 1
    return cursor


def _shrink(leaves: list[_Leaf], n: int) -> bool:
    """Remove up to ``n`` words, the longest leaves first; False when nothing can go."""
    removed = 0
    while removed < n:
        longest = max(leaves, key=lambda leaf: len(leaf.words))
        if len(longest.words) <= 1:
            break
        longest.words.pop()
        removed += 1
    return removed > 0


def _seed(request: ChatRequest) -> int:
    key = json.dumps([request.model, request.schema_name, request.messages], ensure_ascii=False)
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")


def generate_content(request: ChatRequest, target: int) -> str:
    """The full (untruncated) answer: deterministic for the same model, schema name and
    messages, and ``target`` tokens long whatever the prompt."""
    rng = random.Random(_seed(request))
    if request.batch_members and request.schema is not None:
        return _batch_content(request, rng)
    if request.section == PATCH_SCHEMA_KEY:
        return _patch_content(request, rng)
    if request.response_type == "json_schema" and request.schema is not None:
        builder = _InstanceBuilder(request.schema, rng)
        tree = builder.build(request.schema)
        return _pad(tree, builder.leaves, target, request.model, rng)
    leaf = _Leaf(_words(rng, max(1, int(target * 0.9))), prose=True)
    if request.response_type == "json_object":
        return _pad({"text": leaf}, [leaf], target, request.model, rng)
    return _pad(leaf, [leaf], target, request.model, rng, raw_text=True)


def _batch_content(request: ChatRequest, rng: random.Random, broken: str | None = None) -> str:
    """A batch's answer: each member built from its own schema and padded to its own catalogue
    target, so a batch answers with the sum of its members' targets (plus its keys) and is never
    cheaper by answering shorter. ``broken`` names a member whose value violates its schema."""
    assert request.schema is not None
    props = request.schema["properties"]
    parts = []
    for key in request.batch_members:
        builder = _InstanceBuilder(request.schema, rng)
        tree = builder.build(props[key])
        text = _pad(tree, builder.leaves, target_tokens(key, None), request.model, rng)
        if key == broken:
            text = json.dumps("(the model lost track of this section)")
        parts.append(f"{json.dumps(key)}: {text}")
    return "{" + ", ".join(parts) + "}"


# A patch fills this share of the request's max_completion_tokens: the figure is set by what the
# caller allows, never by the stub answering short.
PATCH_FILL = 0.9
_CURRENT = re.compile(r"CURRENT\n(?P<doc>.*?)\nCHANGED\n", re.DOTALL)


def _text_leaves(node: Any, path: str = "") -> list[tuple[str, str]]:
    """(JSON Pointer, text) of a document's text leaves, in document order."""
    if isinstance(node, str):
        return [(path, node)]
    if isinstance(node, dict):
        items = node.items()
    elif isinstance(node, list):
        items = enumerate(node)
    else:
        return []
    out: list[tuple[str, str]] = []
    for key, value in items:
        escaped = str(key).replace("~", "~0").replace("/", "~1")
        out += _text_leaves(value, f"{path}/{escaped}")
    return out


def _patch_content(request: ChatRequest, rng: random.Random) -> str:
    """A patch request's answer: each of the CURRENT document's text leaves in turn rewritten at
    its own length (``replace``), until the operations are ``PATCH_FILL`` of
    ``max_completion_tokens`` long, so they apply and validate. Without a readable CURRENT the
    operations name a path that is not there."""
    budget = int((request.max_tokens or DEFAULT_TARGET_TOKENS) * PATCH_FILL)
    match = _CURRENT.search("\n".join(text for _, text in request.messages))
    try:
        current = json.loads(match.group("doc")) if match else None
    except json.JSONDecodeError:
        current = None
    leaves = _text_leaves(current) or [("/not-in-the-document", "text")]
    operations: list[dict[str, str]] = []

    def dump() -> str:
        return json.dumps({"operations": operations}, ensure_ascii=False)

    while count_tokens(dump(), request.model) < budget and len(operations) < len(leaves):
        path, text = leaves[len(operations)]
        size = max(1, count_tokens(text, request.model))
        operations.append({"op": "replace", "path": path, "value": " ".join(_words(rng, size))})
    while operations and count_tokens(dump(), request.model) > budget:
        words = operations[-1]["value"].split()
        if len(words) > 1:
            operations[-1]["value"] = " ".join(words[:-1])
        else:
            operations.pop()
    return dump()


def batch_target_tokens(members: Sequence[str]) -> int:
    """A batch's completion size: the sum of its members' targets."""
    return sum(target_tokens(key, None) for key in members)


def truncate(content: str, limit: int, model: str) -> str:
    """The first ``limit`` tokens of ``content`` (what a ``finish_reason: length`` returns)."""
    return decode(encode(content, model)[:limit], model)


def corrupt(content: str) -> str:
    """Content that no JSON parser accepts: chatter before it and its last character cut."""
    return "Here is the section you asked for:\n" + content[:-1]


# --------------------------------------------------------------------------------------------
# Embeddings
# --------------------------------------------------------------------------------------------


@lru_cache(maxsize=262144)
def _feature_slot(feature: str) -> tuple[int, float]:
    digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
    return int.from_bytes(digest[:7], "big"), (1.0 if digest[7] & 1 else -1.0)


def embed_text(text: str, dimensions: int = DEFAULT_EMBEDDING_DIMENSIONS) -> list[float]:
    """A deterministic unit vector from hashed character trigrams and words.

    Texts sharing most trigrams and words point the same way (cosine near 1); unrelated texts
    share few features, and signed hashing keeps collisions from adding up (cosine near 0)."""
    vector = [0.0] * dimensions
    normal = " ".join(text.lower().split())
    padded = f" {normal} "
    features = [(f"c:{padded[i : i + 3]}", 1.0) for i in range(len(padded) - 2)]
    features += [(f"w:{word}", 2.0) for word in re.findall(r"\w+", normal)]
    for feature, weight in features:
        slot, sign = _feature_slot(feature)
        vector[slot % dimensions] += sign * weight
    norm = math.sqrt(sum(v * v for v in vector))
    return [v / norm for v in vector] if norm else vector


def _embedding_inputs(raw: Any, model: str) -> list[tuple[str, int]]:
    """(text, prompt tokens) per input: strings, lists of strings or token arrays."""
    if isinstance(raw, str) or (isinstance(raw, list) and raw and isinstance(raw[0], int)):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise BadRequest("'input' must be a non-empty string or list")
    out = []
    for item in raw:
        if isinstance(item, str) and item:
            out.append((item, count_tokens(item, model)))
        elif isinstance(item, list) and item and all(isinstance(t, int) for t in item):
            out.append((decode(item, model), len(item)))
        else:
            raise BadRequest("each input must be a non-empty string or token array")
    return out


def _encode_vector(vector: list[float], encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(array.array("f", vector).tobytes()).decode()
    return vector


# --------------------------------------------------------------------------------------------
# Fault rules
# --------------------------------------------------------------------------------------------

FaultKind = Literal["status", "invalid_json", "delay", "resource_unavailable"]
_ERROR_KINDS = frozenset({"status", "invalid_json", "resource_unavailable"})
# OpenAI's answer when flex processing has no capacity (requests are not billed).
RESOURCE_UNAVAILABLE_MESSAGE = "Resource unavailable. Please try again later or use the default service tier."


@dataclass
class FaultRule:
    """One injected fault; ``times`` counts down per matching request."""

    kind: FaultKind
    times: int = 1
    section: str | None = None
    model: str | None = None
    # Only requests whose prompt contains this text (e.g. one deliverable document's title).
    contains: str | None = None
    status: int | None = None
    retry_after: float | None = None
    seconds: float = 0.0
    message: str | None = None
    code: str | None = None
    error_type: str | None = None

    def matches(self, model: str, section_key: str | None, prompt: str = "", service_tier: str | None = None) -> bool:
        # Flex capacity running out refuses flex requests only.
        if self.kind == "resource_unavailable" and service_tier != FLEX:
            return False
        return (
            (self.section is None or self.section == section_key)
            and (self.model is None or self.model == model)
            and (self.contains is None or self.contains in prompt)
        )

    def to_dict(self) -> _JSON:
        """The rule in its wire form (as ``POST /_stub/faults`` takes it)."""
        out: _JSON = {
            "kind": self.kind,
            "times": self.times,
            "match": {"section": self.section, "model": self.model, "contains": self.contains},
        }
        if self.kind == "status":
            out.update(
                status=self.status,
                retry_after=self.retry_after,
                message=self.message,
                code=self.code,
                type=self.error_type,
            )
        if self.kind == "delay":
            out["seconds"] = self.seconds
        return out


def parse_fault_rule(raw: Any) -> FaultRule:
    """A :class:`FaultRule` from its JSON form; raises :class:`BadRequest` on any mistake, so a
    typo in a test fails loudly instead of silently injecting nothing."""
    if not isinstance(raw, dict):
        raise BadRequest("a fault rule must be an object")
    allowed = {"kind", "times", "match", "status", "retry_after", "seconds", "message", "code", "type"}
    if unknown := set(raw) - allowed:
        raise BadRequest(f"unknown fault rule fields: {sorted(unknown)}")
    kind = raw.get("kind")
    if kind not in ("status", "invalid_json", "delay", "resource_unavailable"):
        raise BadRequest(f"fault 'kind' must be status, invalid_json, delay or resource_unavailable, got {kind!r}")
    match = raw.get("match") or {}
    if not isinstance(match, dict) or set(match) - {"section", "model", "contains"}:
        raise BadRequest("fault 'match' may only have 'section', 'model' and 'contains'")
    times = raw.get("times", 1)
    if not isinstance(times, int) or isinstance(times, bool) or times < 1:
        raise BadRequest("fault 'times' must be a positive integer")
    rule = FaultRule(
        kind=kind,
        times=times,
        section=match.get("section"),
        model=match.get("model"),
        contains=match.get("contains"),
        message=raw.get("message"),
        code=raw.get("code"),
        error_type=raw.get("type"),
    )
    _fill_kind_fields(rule, raw)
    return rule


def _fill_kind_fields(rule: FaultRule, raw: _JSON) -> None:
    if rule.kind == "status":
        status = raw.get("status")
        if not isinstance(status, int) or not 400 <= status <= 599:
            raise BadRequest("a status fault needs 'status' between 400 and 599")
        rule.status = status
        retry_after = raw.get("retry_after")
        if retry_after is not None and (not isinstance(retry_after, int | float) or retry_after < 0):
            raise BadRequest("'retry_after' must be a non-negative number")
        rule.retry_after = retry_after
    elif rule.kind == "delay":
        seconds = raw.get("seconds")
        if not isinstance(seconds, int | float) or seconds < 0:
            raise BadRequest("a delay fault needs non-negative 'seconds'")
        rule.seconds = float(seconds)


# --------------------------------------------------------------------------------------------
# State
# --------------------------------------------------------------------------------------------


@dataclass
class StubState:
    """Everything one stub instance remembers; thread-safe so test threads can touch it."""

    api_key: str | None = None
    models: tuple[str, ...] | None = None
    latency_per_completion_token: float = 0.0
    flex_slowdown: float = DEFAULT_FLEX_SLOWDOWN
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _rules: list[FaultRule] = field(default_factory=list, repr=False)
    _log: list[_JSON] = field(default_factory=list, repr=False)
    # Prefix digest -> when it was last used, on the stub's clock (see ``now``).
    _prefixes: dict[bytes, float] = field(default_factory=dict, repr=False)
    # A simulated clock for benchmarks (``set_clock``): (simulated seconds, monotonic time when
    # set); None: the wall clock. Time keeps running from the set point, as a real day does.
    _clock: tuple[float, float] | None = field(default=None, repr=False)
    cache_idle_seconds: float = CACHE_IDLE_SECONDS
    _sequence: int = field(default=0, repr=False)
    # Injected sleeps wait on this event, so shutting down ends them at once instead of
    # holding the server (the event belongs to the serving loop, hence set thread-safely).
    _wake: asyncio.Event | None = field(default=None, repr=False)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)
    _closing: bool = field(default=False, repr=False)
    # The Batch API's files and batches (stubs.batches), answered by this state's chat code.
    batches: BatchStore = field(default_factory=BatchStore, repr=False)

    def __post_init__(self) -> None:
        self.batches.answer = lambda body, corrupt_json: answer_request(self, body, corrupt_json=corrupt_json)

    async def sleep(self, seconds: float) -> None:
        """Sleep without blocking other requests; cut short when the server shuts down."""
        wake = self._wake_event()
        if wake is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):  # not wait_for: it can swallow a cancel on 3.11
                await wake.wait()

    def _wake_event(self) -> asyncio.Event | None:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._closing:
                return None
            if self._wake is None or self._loop is not loop:
                self._loop, self._wake = loop, asyncio.Event()
            return self._wake

    def set_closing(self, closing: bool) -> None:
        """Mark the server as shutting down (waking every sleeper) or as serving again."""
        with self._lock:
            self._closing = closing
            loop, wake = self._loop, self._wake
            self._loop = self._wake = None
        if closing and loop is not None and wake is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)

    def authorized(self, authorization: str | None) -> bool:
        """True when no key is configured or the bearer token equals it."""
        return self.api_key is None or authorization == f"Bearer {self.api_key}"

    def model_known(self, model: str) -> bool:
        return self.models is None or model in self.models

    def listed_models(self) -> tuple[str, ...]:
        return self.models if self.models is not None else DEFAULT_MODELS

    def next_id(self, prefix: str) -> str:
        with self._lock:
            self._sequence += 1
            return f"{prefix}-stub{self._sequence:08d}"

    def add_faults(self, rules: Sequence[FaultRule]) -> None:
        """Append rules after the active ones."""
        with self._lock:
            self._rules.extend(rules)

    def faults(self) -> list[_JSON]:
        with self._lock:
            return [rule.to_dict() for rule in self._rules]

    def take_faults(
        self,
        model: str,
        section_key: str | None,
        members: Sequence[str] = (),
        prompt: str = "",
        service_tier: str | None = None,
    ) -> tuple[FaultRule | None, FaultRule | None]:
        """The first matching delay rule and the first matching error rule, each consumed once;
        rules whose ``times`` reach zero are dropped. A rule naming a section also matches a
        batch that has the section as a member."""
        delay: FaultRule | None = None
        error: FaultRule | None = None
        with self._lock:
            for rule in self._rules:
                if not (
                    rule.matches(model, section_key, prompt, service_tier)
                    or any(rule.matches(model, m, prompt, service_tier) for m in members)
                ):
                    continue
                if rule.kind == "delay" and delay is None:
                    delay = rule
                elif rule.kind in _ERROR_KINDS and error is None:
                    error = rule
                else:
                    continue
                rule.times -= 1
            self._rules = [rule for rule in self._rules if rule.times > 0]
        return delay, error

    def set_clock(self, seconds: float | None) -> None:
        """Put the stub's clock at ``seconds`` of simulated time (None: back to the wall
        clock). Benchmarks move it forward per event, so a prefix left idle for simulated
        hours expires as it would at the provider."""
        with self._lock:
            self._clock = None if seconds is None else (seconds, time.monotonic())

    def now(self) -> float:
        with self._lock:
            return self._now()

    def _now(self) -> float:
        if self._clock is None:
            return time.monotonic()
        at, since = self._clock
        return at + (time.monotonic() - since)

    def cache_lookup_and_store(self, digests: list[tuple[int, bytes]]) -> int:
        """Cached tokens for this prompt (longest prefix used within the idle window), then
        remember its prefixes for later requests."""
        with self._lock:
            now = self._now()
            oldest = now - self.cache_idle_seconds
            hit = next((n for n, d in reversed(digests) if self._prefixes.get(d, -math.inf) >= oldest), 0)
            self._prefixes.update((d, now) for _, d in digests)
        return hit

    def log_request(self, entry: _JSON) -> _JSON:
        """Append an entry in arrival order; it is updated in place when the request ends
        (``status`` is None while it is in flight)."""
        with self._lock:
            self._log.append(entry)
        return entry

    def update_entry(self, entry: _JSON, **values: Any) -> None:
        with self._lock:
            entry.update(values)

    def requests(self) -> list[_JSON]:
        """A copy of the chat request log."""
        with self._lock:
            return [dict(entry) for entry in self._log]

    def reset(self) -> None:
        """Forget faults, the request log, the prefix cache and the simulated clock."""
        with self._lock:
            self._rules.clear()
            self._log.clear()
            self._prefixes.clear()
            self._clock = None
        self.batches.reset()


# --------------------------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------------------------

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "invalid_request_error",
    409: "conflict_error",
    422: "invalid_request_error",
    429: "requests",
}
_ERROR_CODES = {401: "invalid_api_key", 404: "model_not_found", 429: "rate_limit_exceeded"}


def error_response(
    status: int,
    message: str,
    *,
    error_type: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """An OpenAI-shaped error: ``{"error": {"message", "type", "param", "code"}}``."""
    return JSONResponse(
        error_body(status, message, error_type=error_type, code=code), status_code=status, headers=headers
    )


def error_body(status: int, message: str, *, error_type: str | None = None, code: str | None = None) -> _JSON:
    """The body of an OpenAI-shaped error (also what a failed Batch API line carries)."""
    return {
        "error": {
            "message": message,
            "type": error_type or _ERROR_TYPES.get(status, "server_error"),
            "param": None,
            "code": code if code is not None else _ERROR_CODES.get(status),
        }
    }


def _auth_error() -> JSONResponse:
    return error_response(
        401,
        "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
        code="invalid_api_key",
    )


def _model_error(model: str) -> JSONResponse:
    return error_response(
        404, f"The model `{model}` does not exist or you do not have access to it.", code="model_not_found"
    )


def _fault_error(rule: FaultRule) -> JSONResponse:
    if rule.kind == "resource_unavailable":
        return error_response(
            429,
            rule.message or RESOURCE_UNAVAILABLE_MESSAGE,
            error_type=rule.error_type,
            code=rule.code or "resource_unavailable",
        )
    status = rule.status or 500
    headers = {"retry-after": f"{rule.retry_after:g}"} if rule.retry_after is not None else None
    message = rule.message or f"Injected fault: HTTP {status} from the stub."
    return error_response(status, message, error_type=rule.error_type, code=rule.code, headers=headers)


def _state(request: Request) -> StubState:
    return request.app.state.stub


async def _json_body(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadRequest("the request body is not valid JSON") from None


def _fault_label(delay: FaultRule | None, error: FaultRule | None) -> str | None:
    kinds = [rule.kind for rule in (delay, error) if rule is not None]
    return "+".join(kinds) or None


async def chat_completions(request: Request) -> JSONResponse:
    """``POST /v1/chat/completions``."""
    state = _state(request)
    entry = state.log_request(
        {
            "model": None,
            "section": None,
            "prompt_tokens": 0,
            "cached_tokens": 0,
            "completion_tokens": 0,
            "prompt_cache_key": None,
            "status": None,
            "fault": None,
            "finish_reason": None,
            # A batch's member sections (its "section" is the batch schema's key).
            "members": [],
            "answer": None,
            "service_tier": None,
            # Simulated generation time (latency_per_completion_token, slower for flex).
            "generation_seconds": 0.0,
            # When it arrived (time.monotonic()), for tests of rate limits over time.
            "received_at": time.monotonic(),
        }
    )
    response = await _chat_completions(request, state, entry)
    state.update_entry(entry, status=response.status_code)
    return response


async def _chat_completions(request: Request, state: StubState, entry: _JSON) -> JSONResponse:
    try:
        body = await _json_body(request)
        if isinstance(body, dict):
            state.update_entry(entry, model=body.get("model"))
        if not state.authorized(request.headers.get("authorization")):
            return _auth_error()
        chat = parse_chat_request(body)
        state.update_entry(
            entry, section=chat.section, prompt_cache_key=chat.prompt_cache_key, service_tier=chat.service_tier
        )
        # What the model was shown, so tests can check what a prompt carried (and what it did not).
        state.update_entry(entry, messages=chat.message_dicts())
        if not state.model_known(chat.model):
            return _model_error(chat.model)
        if chat.batch_members:
            state.update_entry(entry, members=list(chat.batch_members))
            target = batch_target_tokens(chat.batch_members)
        else:
            target = target_tokens(chat.section, request.headers.get(TARGET_HEADER))
    except BadRequest as err:
        return error_response(400, str(err))
    prompt = "\n".join(text for _, text in chat.messages)
    delay, error = state.take_faults(chat.model, chat.section, chat.batch_members, prompt, chat.service_tier)
    state.update_entry(entry, fault=_fault_label(delay, error))
    if delay is not None:
        await state.sleep(delay.seconds)
    if error is not None and error.kind in ("status", "resource_unavailable"):
        return _fault_error(error)
    # An invalid_json fault aimed at one member of a batch spoils that member only.
    broken = error.section if error is not None and error.section in chat.batch_members else None
    return await _answer(chat, target, state, entry, corrupt_json=error is not None and broken is None, broken=broken)


async def _answer(
    chat: ChatRequest,
    target: int,
    state: StubState,
    entry: _JSON,
    *,
    corrupt_json: bool,
    broken: str | None = None,
) -> JSONResponse:
    body = answer_body(chat, target, state, corrupt_json=corrupt_json, broken=broken)
    usage = body["usage"]
    state.update_entry(
        entry,
        prompt_tokens=usage["prompt_tokens"],
        cached_tokens=usage["prompt_tokens_details"]["cached_tokens"],
        completion_tokens=usage["completion_tokens"],
        finish_reason=body["choices"][0]["finish_reason"],
        # What the model answered, so a check can follow what later prompts must carry of it
        # (tokenopt.fidelity: earlier months' decisions, thread summaries).
        answer=body["choices"][0]["message"]["content"],
    )
    if state.latency_per_completion_token > 0:
        slowdown = state.flex_slowdown if chat.service_tier == FLEX else 1.0
        seconds = usage["completion_tokens"] * state.latency_per_completion_token * slowdown
        state.update_entry(entry, generation_seconds=seconds)
        await state.sleep(seconds)
    return JSONResponse(body, headers={"x-request-id": body["id"]})


def answer_body(
    chat: ChatRequest, target: int, state: StubState, *, corrupt_json: bool = False, broken: str | None = None
) -> _JSON:
    """The chat completion the stub answers ``chat`` with (the HTTP endpoint and Batch API
    lines alike, so both are the same size and bill the same tokens); ``broken`` names the one
    member of a section batch whose part is spoilt."""
    # The answer is NOT capped by max_tokens: every arm gets the same-sized answer, so no arm
    # can look cheaper by asking for less. A limit below the answer's size truncates it,
    # with finish_reason "length", exactly as OpenAI does.
    if broken is not None:
        content = _batch_content(chat, random.Random(_seed(chat)), broken)
    else:
        content = generate_content(chat, target)
    if corrupt_json:
        content = corrupt(content)
    completion = count_tokens(content, chat.model)
    finish_reason = "stop"
    if chat.max_tokens is not None and chat.max_tokens < completion:
        content, completion, finish_reason = (
            truncate(content, chat.max_tokens, chat.model),
            chat.max_tokens,
            "length",
        )
    prompt = prompt_tokens(chat)
    cached = state.cache_lookup_and_store(prefix_digests(rendered_prompt(chat), cache_scope(chat)))
    body = _completion_body(
        state.next_id("chatcmpl"),
        chat.model,
        content,
        finish_reason,
        prompt=prompt,
        cached=cached,
        completion=completion,
    )
    if chat.service_tier is not None:
        # As OpenAI does: the tier that served the request ("auto" is served as "default").
        body["service_tier"] = FLEX if chat.service_tier == FLEX else "default"
    return body


def answer_request(state: StubState, body: Any, *, corrupt_json: bool = False) -> tuple[int, _JSON]:
    """A chat request body answered without HTTP (a Batch API line): the status and response
    body ``/v1/chat/completions`` would give, without its injected faults or latency."""
    try:
        chat = parse_chat_request(body)
        if not state.model_known(chat.model):
            return 404, error_body(
                404, f"The model `{chat.model}` does not exist or you do not have access to it.", code="model_not_found"
            )
        target = target_tokens(chat.section, None)
    except BadRequest as err:
        return 400, error_body(400, str(err))
    return 200, answer_body(chat, target, state, corrupt_json=corrupt_json)


def _completion_body(
    completion_id: str,
    model: str,
    content: str,
    finish_reason: str,
    *,
    prompt: int,
    cached: int,
    completion: int,
) -> _JSON:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_stub",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None, "annotations": []},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
    }


async def embeddings(request: Request) -> JSONResponse:
    """``POST /v1/embeddings``: float or base64 (the ``openai`` client's default) vectors."""
    state = _state(request)
    if not state.authorized(request.headers.get("authorization")):
        return _auth_error()
    try:
        body = await _json_body(request)
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            raise BadRequest("'model' is a required string")
        model = body["model"]
        if not state.model_known(model):
            return _model_error(model)
        inputs = _embedding_inputs(body.get("input"), model)
        dimensions = _optional_int(body, "dimensions") or DEFAULT_EMBEDDING_DIMENSIONS
        if dimensions > MAX_EMBEDDING_DIMENSIONS:
            raise BadRequest(f"'dimensions' must be at most {MAX_EMBEDDING_DIMENSIONS}")
        encoding_format = body.get("encoding_format") or "float"
        if encoding_format not in ("float", "base64"):
            raise BadRequest("'encoding_format' must be float or base64")
    except BadRequest as err:
        return error_response(400, str(err))
    data = [
        {
            "object": "embedding",
            "index": i,
            "embedding": _encode_vector(embed_text(text, dimensions), encoding_format),
        }
        for i, (text, _) in enumerate(inputs)
    ]
    tokens = sum(n for _, n in inputs)
    return JSONResponse(
        {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


async def list_models(request: Request) -> JSONResponse:
    """``GET /v1/models``: the allowlist, or a default list when none is configured."""
    state = _state(request)
    if not state.authorized(request.headers.get("authorization")):
        return _auth_error()
    data = [{"id": m, "object": "model", "created": 0, "owned_by": "stub"} for m in state.listed_models()]
    return JSONResponse({"object": "list", "data": data})


async def control_faults(request: Request) -> JSONResponse:
    """``POST /_stub/faults`` appends rules (a list, or one rule); ``GET`` lists active ones."""
    state = _state(request)
    if request.method == "POST":
        try:
            raw = await _json_body(request)
            rules = [parse_fault_rule(r) for r in (raw if isinstance(raw, list) else [raw])]
        except BadRequest as err:
            return error_response(400, str(err))
        state.add_faults(rules)
    return JSONResponse(state.faults())


async def control_requests(request: Request) -> JSONResponse:
    """``GET /_stub/requests``: every chat request in arrival order."""
    return JSONResponse(_state(request).requests())


async def control_reset(request: Request) -> JSONResponse:
    """``POST /_stub/reset``: clear faults, the request log and the prefix cache."""
    _state(request).reset()
    return JSONResponse({"reset": True})


def create_app(state: StubState) -> Starlette:
    """The stub's ASGI app, bound to ``state``."""
    app = Starlette(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/embeddings", embeddings, methods=["POST"]),
            Route("/v1/models", list_models, methods=["GET"]),
            Route("/_stub/faults", control_faults, methods=["GET", "POST"]),
            Route("/_stub/requests", control_requests, methods=["GET"]),
            Route("/_stub/reset", control_reset, methods=["POST"]),
            *BATCH_ROUTES,
        ]
    )
    app.state.stub = state
    return app


# --------------------------------------------------------------------------------------------
# Running it
# --------------------------------------------------------------------------------------------


class StubServer:
    """The stub on a free 127.0.0.1 port, served by uvicorn in a background thread.

    ``with StubServer(api_key="test-key") as stub:`` then point ``AsyncOpenAI`` at
    ``stub.base_url``. Helpers touch the state directly (it is thread-safe)."""

    def __init__(
        self,
        api_key: str | None = None,
        models: Sequence[str] | None = None,
        latency_per_completion_token: float = 0.0,
        *,
        flex_slowdown: float = DEFAULT_FLEX_SLOWDOWN,
        host: str = "127.0.0.1",
        port: int = 0,
    ):
        self.state = StubState(
            api_key=api_key,
            models=tuple(models) if models is not None else None,
            latency_per_completion_token=latency_per_completion_token,
            flex_slowdown=flex_slowdown,
        )
        self.host = host
        self._port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        """The root URL, e.g. ``http://127.0.0.1:PORT``."""
        return f"http://{self.host}:{self._port}"

    @property
    def base_url(self) -> str:
        """The OpenAI base URL, ending in ``/v1``."""
        return f"{self.url}/v1"

    def start(self, timeout: float = 5.0) -> StubServer:
        """Bind, start serving in a daemon thread, and return once it accepts connections."""
        if self._thread is not None:
            raise RuntimeError("the stub server is already running")
        # Binding here (not in uvicorn) gives the port before the thread starts: no race.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._port))
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            create_app(self.state),
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self.state.set_closing(False)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name=f"llm-stub-{self._port}", daemon=True
        )
        self._thread.start()
        self._wait_started(sock, timeout)
        return self

    def _wait_started(self, sock: socket.socket, timeout: float) -> None:
        assert self._server is not None and self._thread is not None
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                sock.close()
                raise RuntimeError(f"the stub server did not start on {self.url}")
            time.sleep(0.005)

    def stop(self) -> None:
        """Stop serving: injected delays end at once, other in-flight requests get a second."""
        self.state.set_closing(True)
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None

    def __enter__(self) -> StubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add_faults(self, rules: Sequence[_JSON]) -> None:
        """Append fault rules (their JSON form, as ``POST /_stub/faults`` takes them)."""
        self.state.add_faults([parse_fault_rule(rule) for rule in rules])

    def requests(self) -> list[_JSON]:
        """The chat request log (see ``GET /_stub/requests``)."""
        return self.state.requests()

    def add_batch_faults(self, rules: Sequence[_JSON]) -> None:
        """Append Batch API fault rules (as ``POST /_stub/batch_faults`` takes them)."""
        self.state.batches.add_faults([parse_batch_fault(rule) for rule in rules])

    def batches(self) -> list[_JSON]:
        """Every batch created: id, status, lines, polls, metadata."""
        return self.state.batches.summary()

    def reset(self) -> None:
        """Clear faults, the request log, the prefix cache and the simulated clock."""
        self.state.reset()

    def set_clock(self, seconds: float | None) -> None:
        """The stub's simulated time in seconds (see ``StubState.set_clock``)."""
        self.state.set_clock(seconds)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m stubs.llm_server``: serve in the foreground until interrupted."""
    parser = argparse.ArgumentParser(description="Deterministic OpenAI-compatible stub")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--api-key", default=None, help="require this bearer token")
    parser.add_argument("--models", default=None, help="comma-separated model allowlist (default: any model)")
    parser.add_argument(
        "--latency-per-token",
        type=float,
        default=0.0,
        help="seconds of simulated generation time per completion token",
    )
    parser.add_argument(
        "--flex-slowdown",
        type=float,
        default=DEFAULT_FLEX_SLOWDOWN,
        help="service_tier=flex takes this many times the simulated generation time",
    )
    parser.add_argument("--batch-polls", type=int, default=2, help="retrievals before a batch completes")
    parser.add_argument("--batch-seconds", type=float, default=None, help="or seconds after creation")
    args = parser.parse_args(argv)
    models = tuple(m.strip() for m in args.models.split(",") if m.strip()) if args.models else None
    state = StubState(
        api_key=args.api_key,
        models=models,
        latency_per_completion_token=args.latency_per_token,
        flex_slowdown=args.flex_slowdown,
    )
    state.batches.configure(polls=args.batch_polls, seconds=args.batch_seconds)
    uvicorn.run(
        create_app(state),
        host=args.host,
        port=args.port,
        log_level="info",
        lifespan="off",
        timeout_graceful_shutdown=1,
    )


if __name__ == "__main__":
    main()
