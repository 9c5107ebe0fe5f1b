"""The OpenAI-compatible stub, exercised through the official ``openai`` client over HTTP."""

from __future__ import annotations

import asyncio
import json
import math
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import openai
import pytest
from openai import AsyncOpenAI

from domain.catalogue.plan import section
from domain.outputs.schemas import output_model, schema_name, strict_json_schema
from stubs.llm_server import (
    CACHE_IDLE_SECONDS,
    CACHE_MIN_TOKENS,
    CACHE_STEP_TOKENS,
    DEFAULT_TARGET_TOKENS,
    StubServer,
    schema_text,
)
from tokenopt.counting import count_messages, count_tokens, encode

KEY = "test-key"
MODEL = "gpt-4.1-mini"
# About 1,500 tokens of stable context: long enough to be cached, identical across requests.
CONTEXT = " ".join(
    f"Client fact {i}: the brand sells handmade ceramics to urban renters in Lisbon." for i in range(100)
)


@pytest.fixture(scope="module")
def stub() -> Iterator[StubServer]:
    with StubServer(api_key=KEY) as server:
        yield server


@pytest.fixture(autouse=True)
def clean(stub: StubServer) -> None:
    stub.reset()


@pytest.fixture
async def client(stub: StubServer) -> AsyncIterator[AsyncOpenAI]:
    api = AsyncOpenAI(base_url=stub.base_url, api_key=KEY, max_retries=0)
    yield api
    await api.close()


def section_format(key: str) -> dict[str, Any]:
    return {
        "type": "json_schema",
        "json_schema": {
            "name": schema_name(key, 1),
            "schema": strict_json_schema(output_model(key)),
            "strict": True,
        },
    }


def messages(user: str, system: str = "Write the section as JSON.") -> list[dict[str, str]]:
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


async def ask_section(client: AsyncOpenAI, key: str, user: str = "Ceramics studio.", **kwargs: Any) -> Any:
    return await client.chat.completions.create(
        model=MODEL, messages=messages(user), response_format=section_format(key), **kwargs
    )


def within(actual: int, target: int, tolerance: float = 0.03) -> bool:
    return abs(actual - target) <= tolerance * target


# ---- structured output ------------------------------------------------------------------


@pytest.mark.parametrize("key", ["market_analysis", "financial_projections", "team_structure"])
async def test_schema_answer_validates_against_the_section_model(client: AsyncOpenAI, key: str) -> None:
    response = await ask_section(client, key)
    choice = response.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert response.object == "chat.completion" and response.id
    parsed = output_model(key).model_validate_json(choice.message.content or "")
    arrays = [v for v in parsed.model_dump().values() if isinstance(v, list)]
    assert arrays and all(2 <= len(items) <= 4 for items in arrays)


@pytest.mark.parametrize("key", ["market_analysis", "financial_projections"])
@pytest.mark.parametrize("repeat", [1, 300])
async def test_completion_size_is_the_catalogue_target_whatever_the_prompt(
    client: AsyncOpenAI, key: str, repeat: int
) -> None:
    response = await ask_section(client, key, "Describe the venture. " * repeat)
    usage = response.usage
    assert usage is not None
    target = section(key).target_tokens
    assert within(usage.completion_tokens, target), (usage.completion_tokens, target)
    assert usage.completion_tokens == count_tokens(response.choices[0].message.content, MODEL)
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.completion_tokens_details.reasoning_tokens == 0


async def test_max_tokens_does_not_shrink_the_answer(client: AsyncOpenAI) -> None:
    response = await ask_section(client, "executive_summary", max_completion_tokens=4000)
    assert within(response.usage.completion_tokens, section("executive_summary").target_tokens)


async def test_a_limit_below_the_target_truncates_like_openai(client: AsyncOpenAI) -> None:
    response = await ask_section(client, "market_analysis", max_completion_tokens=100)
    assert response.choices[0].finish_reason == "length"
    assert response.usage.completion_tokens == 100
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.choices[0].message.content or "")


async def test_same_request_same_content_and_other_prompt_other_content(client: AsyncOpenAI) -> None:
    first = await ask_section(client, "operations_plan", "Brand A")
    again = await ask_section(client, "operations_plan", "Brand A")
    other = await ask_section(client, "operations_plan", "Brand B")
    assert first.choices[0].message.content == again.choices[0].message.content
    assert first.choices[0].message.content != other.choices[0].message.content
    assert first.usage.completion_tokens == other.usage.completion_tokens


async def test_prompt_tokens_count_the_schema_then_the_messages(client: AsyncOpenAI) -> None:
    key = "competitive_landscape"
    response = await ask_section(client, key, "Who competes?")
    schema_tokens = count_tokens(schema_text(strict_json_schema(output_model(key))), MODEL)
    assert response.usage.prompt_tokens == (count_messages(messages("Who competes?"), MODEL) + schema_tokens)


async def test_prose_and_json_object_use_the_header_target_or_the_default(client: AsyncOpenAI) -> None:
    prose = await client.chat.completions.create(model=MODEL, messages=messages("Hi"))
    assert within(prose.usage.completion_tokens, DEFAULT_TARGET_TOKENS)
    assert prose.usage.prompt_tokens == count_messages(messages("Hi"), MODEL)
    sized = await client.chat.completions.create(
        model=MODEL,
        messages=messages("Hi"),
        response_format={"type": "json_object"},
        extra_headers={"X-Stub-Target-Tokens": "350"},
    )
    assert within(sized.usage.completion_tokens, 350)
    assert isinstance(json.loads(sized.choices[0].message.content or "")["text"], str)


async def test_unknown_schema_name_falls_back_to_the_header(client: AsyncOpenAI) -> None:
    fmt = {
        "type": "json_schema",
        "json_schema": {
            "name": "brand_architecture_v2",
            "strict": True,
            "schema": {
                "type": "object",
                "properties": {"title": {"type": "string"}},
                "required": ["title"],
                "additionalProperties": False,
            },
        },
    }
    response = await client.chat.completions.create(
        model=MODEL,
        messages=messages("Hi"),
        response_format=fmt,
        extra_headers={"X-Stub-Target-Tokens": "120"},
    )
    assert within(response.usage.completion_tokens, 120)
    assert set(json.loads(response.choices[0].message.content or "")) == {"title"}


# ---- prefix cache ------------------------------------------------------------------------


async def cached_tokens(client: AsyncOpenAI, system: str, user: str, cache_key: str | None = None) -> tuple[int, int]:
    extra = {"prompt_cache_key": cache_key} if cache_key else {}
    response = await client.chat.completions.create(model=MODEL, messages=messages(user, system=system), **extra)
    usage = response.usage
    return usage.prompt_tokens_details.cached_tokens, usage.prompt_tokens


async def test_a_shared_long_prefix_is_cached_in_128_token_steps(client: AsyncOpenAI) -> None:
    first, _ = await cached_tokens(client, CONTEXT, "Alpha: write the plan.")
    second, prompt = await cached_tokens(client, CONTEXT, "Beta: write the plan.")
    assert first == 0
    # Rendered prompt: "system", the context, "user", then the users' texts differ at once.
    shared = len(encode("system", MODEL)) + len(encode(CONTEXT, MODEL)) + len(encode("user", MODEL))
    assert shared >= CACHE_MIN_TOKENS + CACHE_STEP_TOKENS
    assert second == shared // CACHE_STEP_TOKENS * CACHE_STEP_TOKENS
    assert second % CACHE_STEP_TOKENS == 0 and CACHE_MIN_TOKENS <= second <= prompt


async def test_short_prompts_never_cache(client: AsyncOpenAI) -> None:
    for _ in range(2):
        cached, prompt = await cached_tokens(client, "Be brief.", "Same short prompt.")
        assert prompt < CACHE_MIN_TOKENS and cached == 0


async def test_the_cache_is_scoped_by_prompt_cache_key(client: AsyncOpenAI) -> None:
    assert (await cached_tokens(client, CONTEXT, "One", cache_key="client-a"))[0] == 0
    assert (await cached_tokens(client, CONTEXT, "Two", cache_key="client-b"))[0] == 0
    assert (await cached_tokens(client, CONTEXT, "Three", cache_key="client-a"))[0] >= 1024


async def test_a_prefix_idle_past_the_window_on_the_simulated_clock_expires(
    client: AsyncOpenAI, stub: StubServer
) -> None:
    stub.set_clock(0.0)
    await cached_tokens(client, CONTEXT, "One")
    stub.set_clock(CACHE_IDLE_SECONDS - 30)  # used again within the window: a hit, and kept alive
    assert (await cached_tokens(client, CONTEXT, "Two"))[0] >= CACHE_MIN_TOKENS
    stub.set_clock(2 * CACHE_IDLE_SECONDS)  # idle for longer than the window since "Two"
    assert (await cached_tokens(client, CONTEXT, "Three"))[0] == 0
    assert (await cached_tokens(client, CONTEXT, "Four"))[0] >= CACHE_MIN_TOKENS


async def test_reset_forgets_the_cache(client: AsyncOpenAI, stub: StubServer) -> None:
    await cached_tokens(client, CONTEXT, "One")
    stub.reset()
    assert (await cached_tokens(client, CONTEXT, "One"))[0] == 0


# ---- auth and models ---------------------------------------------------------------------


async def test_a_wrong_key_is_an_authentication_error(stub: StubServer) -> None:
    async with AsyncOpenAI(base_url=stub.base_url, api_key="wrong", max_retries=0) as bad:
        with pytest.raises(openai.AuthenticationError) as caught:
            await bad.chat.completions.create(model=MODEL, messages=messages("Hi"))
    assert caught.value.code == "invalid_api_key"
    assert stub.requests()[-1]["status"] == 401


async def test_the_model_allowlist() -> None:
    with StubServer(api_key=KEY, models=["gpt-4.1-nano"]) as narrow:
        async with AsyncOpenAI(base_url=narrow.base_url, api_key=KEY, max_retries=0) as api:
            assert [m.id async for m in api.models.list()] == ["gpt-4.1-nano"]
            with pytest.raises(openai.NotFoundError) as caught:
                await api.chat.completions.create(model="gpt-4o", messages=messages("Hi"))
            assert caught.value.code == "model_not_found"
            ok = await api.chat.completions.create(model="gpt-4.1-nano", messages=messages("Hi"))
            assert ok.model == "gpt-4.1-nano"


async def test_streaming_is_rejected_explicitly(client: AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        await client.chat.completions.create(model=MODEL, messages=messages("Hi"), stream=True)


# ---- faults ------------------------------------------------------------------------------


async def test_a_fault_can_match_text_in_the_prompt(client: AsyncOpenAI, stub: StubServer) -> None:
    stub.add_faults([{"kind": "status", "status": 400, "match": {"section": "market_analysis", "contains": "Pottery"}}])
    await ask_section(client, "market_analysis", "Ceramics studio.")  # same section, other prompt
    with pytest.raises(openai.BadRequestError):
        await ask_section(client, "market_analysis", "Pottery school.")
    await ask_section(client, "market_analysis", "Pottery school.")  # used up
    assert [e["status"] for e in stub.requests()] == [200, 400, 200]


async def test_rate_limit_fault_counts_down_per_matching_request(client: AsyncOpenAI, stub: StubServer) -> None:
    stub.add_faults(
        [
            {
                "kind": "status",
                "status": 429,
                "retry_after": 1.5,
                "times": 2,
                "match": {"section": "market_analysis", "model": None},
            }
        ]
    )
    for _ in range(2):
        with pytest.raises(openai.RateLimitError) as caught:
            await ask_section(client, "market_analysis")
        assert caught.value.response.headers["retry-after"] == "1.5"
        assert caught.value.code == "rate_limit_exceeded"
        await ask_section(client, "team_structure")  # other sections are unaffected
    await ask_section(client, "market_analysis")
    log = stub.requests()
    assert [(e["section"], e["status"]) for e in log] == [
        ("market_analysis", 429),
        ("team_structure", 200),
        ("market_analysis", 429),
        ("team_structure", 200),
        ("market_analysis", 200),
    ]
    assert log[0]["fault"] == "status" and log[-1]["fault"] is None
    assert log[0]["completion_tokens"] == 0


async def test_server_error_fault(client: AsyncOpenAI, stub: StubServer) -> None:
    stub.add_faults([{"kind": "status", "status": 503, "match": {"model": MODEL}}])
    with pytest.raises(openai.InternalServerError) as caught:
        await ask_section(client, "team_structure")
    assert caught.value.status_code == 503
    assert caught.value.body["type"] == "server_error"  # type: ignore[index]


async def test_invalid_json_fault_returns_unparseable_content(client: AsyncOpenAI, stub: StubServer) -> None:
    stub.add_faults([{"kind": "invalid_json", "times": 1, "match": {"section": "team_structure"}}])
    broken = await ask_section(client, "team_structure")
    assert broken.choices[0].finish_reason == "stop"
    with pytest.raises(json.JSONDecodeError):
        json.loads(broken.choices[0].message.content or "")
    fixed = await ask_section(client, "team_structure")
    output_model("team_structure").model_validate_json(fixed.choices[0].message.content or "")
    assert [e["fault"] for e in stub.requests()] == ["invalid_json", None]


async def test_delay_fault_does_not_block_other_requests(client: AsyncOpenAI, stub: StubServer) -> None:
    stub.add_faults([{"kind": "delay", "seconds": 0.4, "times": 5, "match": {"section": "market_analysis"}}])
    finished: list[str] = []

    async def timed(key: str) -> None:
        await ask_section(client, key)
        finished.append(key)

    started = time.monotonic()
    await asyncio.gather(timed("market_analysis"), timed("team_structure"))
    assert finished == ["team_structure", "market_analysis"]
    assert time.monotonic() - started >= 0.4


async def test_delay_and_error_rules_both_apply(client: AsyncOpenAI, stub: StubServer) -> None:
    stub.add_faults([{"kind": "delay", "seconds": 0.2}, {"kind": "status", "status": 500}])
    started = time.monotonic()
    with pytest.raises(openai.InternalServerError):
        await ask_section(client, "team_structure")
    assert time.monotonic() - started >= 0.2
    assert stub.requests()[0]["fault"] == "delay+status"
    assert (await ask_section(client, "team_structure")).choices[0].finish_reason == "stop"


def test_bad_fault_rules_are_rejected(stub: StubServer) -> None:
    response = httpx.post(f"{stub.url}/_stub/faults", json=[{"kind": "explode"}])
    assert response.status_code == 400
    response = httpx.post(f"{stub.url}/_stub/faults", json=[{"kind": "delay", "seconds": 1, "match": {"sektion": "x"}}])
    assert response.status_code == 400
    assert httpx.get(f"{stub.url}/_stub/faults").json() == []


# ---- observation -------------------------------------------------------------------------


async def test_request_log_and_control_endpoints(client: AsyncOpenAI, stub: StubServer) -> None:
    await ask_section(client, "executive_summary", prompt_cache_key="client-7")
    await client.chat.completions.create(model=MODEL, messages=messages("Hi"))
    async with httpx.AsyncClient(base_url=stub.url) as control:
        log = (await control.get("/_stub/requests")).json()
        assert (await control.post("/_stub/reset")).status_code == 200
    assert [e["section"] for e in log] == ["executive_summary", None]
    first = log[0]
    assert first["model"] == MODEL and first["prompt_cache_key"] == "client-7"
    assert first["status"] == 200 and first["fault"] is None
    assert within(first["completion_tokens"], 500) and first["prompt_tokens"] > 0
    assert {"cached_tokens", "finish_reason"} <= set(first)
    assert stub.requests() == []


# ---- embeddings --------------------------------------------------------------------------


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


async def test_embeddings_are_deterministic_and_similarity_ordered(client: AsyncOpenAI) -> None:
    texts = [
        "Handmade ceramic mugs for urban renters in Lisbon",
        "Handmade ceramic mugs for urban renters in Lisbon!",
        "Handmade ceramic bowls for young renters in Porto",
        "Quarterly tax filing deadlines for freight logistics companies",
    ]
    response = await client.embeddings.create(model="text-embedding-3-small", input=texts)
    vectors = [item.embedding for item in response.data]
    assert all(len(v) == 256 for v in vectors)
    assert all(math.isclose(cosine(v, v), 1.0, rel_tol=1e-4) for v in vectors)
    near, related, far = (cosine(vectors[0], v) for v in vectors[1:])
    assert near > 0.9 > related > far and far < 0.3
    assert response.usage.prompt_tokens == sum(count_tokens(t, "text-embedding-3-small") for t in texts)
    again = await client.embeddings.create(
        model="text-embedding-3-small", input=texts[0], dimensions=64, encoding_format="float"
    )
    assert len(again.data[0].embedding) == 64


def test_stop_is_quick_while_a_delayed_request_is_in_flight() -> None:
    server = StubServer().start()
    server.add_faults([{"kind": "delay", "seconds": 60}])
    body = {"model": MODEL, "messages": messages("Hi")}
    caller = threading.Thread(target=lambda: httpx.post(f"{server.base_url}/chat/completions", json=body, timeout=30))
    caller.start()
    deadline = time.monotonic() + 5
    while not server.requests():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert server.requests()[0]["status"] is None  # logged on arrival, still in flight
    started = time.monotonic()
    server.stop()
    caller.join(timeout=5)
    assert time.monotonic() - started < 1.0 and not caller.is_alive()


# ---- running as a process ----------------------------------------------------------------


def test_runs_as_a_separate_process(unused_port: int) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "stubs.llm_server", "--port", str(unused_port), "--api-key", KEY],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{unused_port}/v1/models"
        deadline = time.monotonic() + 8
        while True:
            try:
                response = httpx.get(url, headers={"Authorization": f"Bearer {KEY}"})
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
        assert response.status_code == 200
        assert "gpt-4.1-mini" in [m["id"] for m in response.json()["data"]]
        assert httpx.get(url).status_code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=5)


@pytest.fixture
def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---- service tiers (flex) ---------------------------------------------------------------


async def test_the_service_tier_is_echoed_as_openai_does(client: AsyncOpenAI, stub: StubServer) -> None:
    flex = await ask_section(client, "team_structure", service_tier="flex")
    auto = await ask_section(client, "team_structure", service_tier="auto")
    unsaid = await ask_section(client, "team_structure")
    assert (flex.service_tier, auto.service_tier, unsaid.service_tier) == ("flex", "default", None)
    assert [e["service_tier"] for e in stub.requests()] == ["flex", "auto", None]
    # The same answer whatever the tier: no tier wins by writing less.
    assert flex.usage.completion_tokens == unsaid.usage.completion_tokens


async def test_an_unknown_service_tier_is_a_bad_request(client: AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        await ask_section(client, "team_structure", service_tier="cheapest")


async def test_resource_unavailable_refuses_flex_only(client: AsyncOpenAI, stub: StubServer) -> None:
    stub.add_faults([{"kind": "resource_unavailable", "times": 2}])
    await ask_section(client, "team_structure")  # standard: not refused, the rule stays
    with pytest.raises(openai.RateLimitError) as caught:
        await ask_section(client, "team_structure", service_tier="flex")
    assert caught.value.code == "resource_unavailable"
    assert "Resource unavailable" in caught.value.message
    with pytest.raises(openai.RateLimitError):
        await ask_section(client, "market_analysis", service_tier="flex")
    await ask_section(client, "team_structure", service_tier="flex")  # the rule is used up
    log = stub.requests()
    assert [(e["status"], e["fault"]) for e in log] == [
        (200, None),
        (429, "resource_unavailable"),
        (429, "resource_unavailable"),
        (200, None),
    ]
    assert log[1]["completion_tokens"] == 0  # a refusal writes (and bills) nothing


async def test_flex_answers_more_slowly_by_the_configured_factor() -> None:
    with StubServer(api_key=KEY, latency_per_completion_token=0.0001, flex_slowdown=4.0) as slow:
        async with AsyncOpenAI(base_url=slow.base_url, api_key=KEY, max_retries=0) as api:
            for tier in ("default", "flex"):
                await ask_section(api, "team_structure", service_tier=tier)
        standard, flex = slow.requests()
    assert standard["completion_tokens"] == flex["completion_tokens"]
    assert standard["generation_seconds"] == pytest.approx(standard["completion_tokens"] * 0.0001)
    assert flex["generation_seconds"] == pytest.approx(4.0 * standard["generation_seconds"])
