"""Per-call LLM timeouts follow the answer's size; a call past its timeout is abandoned and
fails retryably. Calls go through the real client to the HTTP stub, which delays on request."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pydantic
import pytest

from activities.errors import FINAL_ERRORS, as_application_error
from domain.catalogue import deliverables, summaries
from domain.catalogue.plan import BUSINESS_PLAN_SECTIONS, section
from domain.outputs.schemas import output_model, schema_name, strict_json_schema
from llm.client import LOCAL_MAX_TOKENS, LLMClient
from llm.errors import LLMError
from llm.timeouts import LOCAL_SECONDS_PER_TOKEN, REMOTE_SECONDS_PER_TOKEN, CallTimeouts
from service.settings import Settings
from service.wiring import LLMConfig, call_timeouts
from stubs.llm_server import StubServer
from workflows.shared import SECTION_START_TO_CLOSE

KEY = "test-key"
KEY_SECTION = "team_structure"


@pytest.fixture(scope="module")
def stub() -> Iterator[StubServer]:
    with StubServer(api_key=KEY) as server:
        yield server


@pytest.fixture(autouse=True)
def clean(stub: StubServer) -> None:
    stub.reset()


async def ask(llm: LLMClient, max_completion_tokens: int):
    spec = section(KEY_SECTION)
    return await llm.complete_json(
        model="gpt-4.1-mini",
        messages=[{"role": "system", "content": "Write the section."}, {"role": "user", "content": "client: ..."}],
        schema_name=schema_name(KEY_SECTION, spec.schema_version),
        schema=strict_json_schema(output_model(KEY_SECTION)),
        max_completion_tokens=max_completion_tokens,
    )


async def test_a_call_slower_than_its_timeout_is_abandoned_and_fails_retryably(stub: StubServer) -> None:
    llm = LLMClient(api_key=KEY, base_url=stub.base_url, timeouts=CallTimeouts(0.5, 0.001, 60))
    stub.add_faults([{"kind": "delay", "seconds": 30, "match": {"section": KEY_SECTION}}])
    try:
        assert llm.timeout_for(500) == pytest.approx(1.0)
        started = time.monotonic()
        with pytest.raises(LLMError) as caught:
            await ask(llm, 500)
        # Abandoned at its own timeout, long before the stub would have answered.
        assert time.monotonic() - started < 15
        err = caught.value
        assert err.kind == "LLMTimeout" and err.retryable
        assert "within 1 s" in str(err) and "500 tokens" in str(err)
        # Temporal sees a retryable failure of a type no retry policy lists as final.
        failure = as_application_error(err)
        assert not failure.non_retryable and failure.type == "LLMTimeout" and failure.type not in FINAL_ERRORS
        assert stub.requests()[0]["fault"] == "delay"
        # The next attempt (the fault was used up) is answered on the same client.
        assert (await ask(llm, 500)).finish_reason == "stop"
    finally:
        await llm.close()


async def test_the_timeout_follows_the_answer_size_asked_for(stub: StubServer) -> None:
    # The same 3 s wait: too long for a 100-token answer (1.5 s), fine for a 1,500-token one (15.5 s).
    llm = LLMClient(api_key=KEY, base_url=stub.base_url, timeouts=CallTimeouts(0.5, 0.01, 60))
    stub.add_faults([{"kind": "delay", "seconds": 3, "times": 2, "match": {"section": KEY_SECTION}}])
    try:
        with pytest.raises(LLMError, match="within 2 s") as small:
            await ask(llm, 100)
        assert small.value.kind == "LLMTimeout"
        large = await ask(llm, 1500)
        assert large.finish_reason == "stop" and large.duration_ms >= 3000
        assert [e["fault"] for e in stub.requests()] == ["delay", "delay"]
    finally:
        await llm.close()


def test_the_timeout_is_base_plus_per_token_and_capped() -> None:
    timeouts = CallTimeouts(base_seconds=30, seconds_per_output_token=0.05, max_seconds=300)
    assert timeouts.for_output(0) == 30
    assert timeouts.for_output(800) == pytest.approx(70)
    assert timeouts.for_output(100_000) == 300
    # The local server stops at LOCAL_MAX_TOKENS whatever the request allows.
    local = LLMClient(api_key="k", structured_output="json_object", timeouts=CallTimeouts(30, 0.25, 300))
    assert local.timeout_for(5000) == local.timeout_for(LOCAL_MAX_TOKENS) == pytest.approx(30 + 0.25 * LOCAL_MAX_TOKENS)


def test_default_timeouts_fit_every_section_and_the_activity() -> None:
    specs = [*BUSINESS_PLAN_SECTIONS, *(s for m in range(1, 9) for s in deliverables.month_sections(m))]
    specs += [summaries.THREAD_SUMMARY, summaries.CLIENT_SUMMARY]
    biggest = max(2 * s.target_tokens for s in specs)  # SectionWriter asks for twice the target
    remote = call_timeouts(Settings(), LLMConfig("k", None, None, frozenset()))
    local = call_timeouts(
        Settings(),
        LLMConfig(
            "k",
            None,
            None,
            frozenset(),
            structured_output="json_object",
            seconds_per_output_token=LOCAL_SECONDS_PER_TOKEN,
        ),
    )
    assert remote.seconds_per_output_token == REMOTE_SECONDS_PER_TOKEN
    # The largest section's answer still has room at the slow rate, without reaching the cap.
    assert remote.for_output(biggest) < remote.max_seconds
    assert local.for_output(min(biggest, LOCAL_MAX_TOKENS)) < local.max_seconds
    # A small summary gives up on a hung server long before the cap.
    assert remote.for_output(400) <= 60
    # A call fits in its activity, so it is the call that times out, retryably.
    assert remote.max_seconds < SECTION_START_TO_CLOSE.total_seconds()


def test_timeout_settings_override_and_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAVELAUNCH_LLM_TIMEOUT_PER_TOKEN_SECONDS", "0.5")
    monkeypatch.setenv("WAVELAUNCH_LLM_TIMEOUT_BASE_SECONDS", "10")
    monkeypatch.setenv("WAVELAUNCH_LLM_TIMEOUT_SECONDS", "120")
    chosen = call_timeouts(Settings(), LLMConfig("k", None, None, frozenset()))
    assert chosen == CallTimeouts(base_seconds=10, seconds_per_output_token=0.5, max_seconds=120)
    monkeypatch.setenv("WAVELAUNCH_LLM_TIMEOUT_SECONDS", str(SECTION_START_TO_CLOSE.total_seconds()))
    with pytest.raises(pydantic.ValidationError, match="llm_timeout_seconds"):
        Settings()
