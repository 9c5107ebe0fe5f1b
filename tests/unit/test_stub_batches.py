"""The stub's Batch API through the official ``openai`` client over HTTP (``llm.batch_api``)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import pytest
from openai.types.chat import ChatCompletion

from domain.catalogue.plan import section
from domain.outputs.schemas import output_model, schema_name, strict_json_schema
from llm import batch_api
from llm.batch_api import BatchLine
from llm.client import LLMClient
from llm.errors import LLMError
from stubs.llm_server import StubServer

KEY = "test-key"
SECTIONS = ["market_analysis", "executive_summary"]


@pytest.fixture(scope="module")
def stub() -> Iterator[StubServer]:
    with StubServer(api_key=KEY) as server:
        yield server


@pytest.fixture(autouse=True)
def clean(stub: StubServer) -> None:
    stub.reset()
    stub.state.batches.configure(polls=2)


@pytest.fixture
async def llm(stub: StubServer) -> AsyncIterator[LLMClient]:
    client = LLMClient(api_key=KEY, base_url=stub.base_url)
    yield client
    await client.close()


def body(llm: LLMClient, key: str) -> dict:
    spec = section(key)
    return llm.request_body(
        model="gpt-4.1-mini",
        messages=[{"role": "user", "content": f"write {key}"}],
        schema_name=schema_name(key, spec.schema_version),
        schema=strict_json_schema(output_model(key)),
        max_completion_tokens=spec.target_tokens * 2,
    )


async def submit(llm: LLMClient, keys: list[str] = SECTIONS) -> batch_api.BatchStatus:
    data = batch_api.build_jsonl([BatchLine(f"id-{k}", body(llm, k)) for k in keys])
    return await batch_api.create(llm, await batch_api.upload(llm, data, "in.jsonl"), {"ref": "r1"})


async def until_done(llm: LLMClient, batch_id: str) -> tuple[list[str], batch_api.BatchStatus]:
    seen = []
    for _ in range(10):
        status = await batch_api.retrieve(llm, batch_id)
        seen.append(status.status)
        if status.terminal:
            return seen, status
    raise AssertionError(f"batch never finished: {seen}")


async def results(llm: LLMClient, file_id: str | None) -> dict[str, batch_api.BatchResult]:
    if file_id is None:
        return {}
    return {r.custom_id: r for r in batch_api.parse_results(await batch_api.content(llm, file_id))}


async def test_a_batch_moves_through_its_states_and_answers_like_the_chat_endpoint(stub, llm):
    created = await submit(llm)
    assert created.status == "validating" and created.total == 2
    seen, done = await until_done(llm, created.id)
    assert seen == ["in_progress", "completed"] and done.completed == 2 and done.failed == 0
    answers = await results(llm, done.output_file_id)
    for key in SECTIONS:
        answer = answers[f"id-{key}"]
        completion = llm.completion(ChatCompletion.model_validate(answer.body), "gpt-4.1-mini", 0)
        output_model(key).model_validate_json(completion.content)
        # The same answer, token for token, as a direct call with the same request.
        direct = await llm.complete_json(
            **{k: v for k, v in body(llm, key).items() if k != "response_format"},
            schema_name=schema_name(key, section(key).schema_version),
            schema=strict_json_schema(output_model(key)),
        )
        assert completion.content == direct.content
        assert completion.completion_tokens == direct.completion_tokens == section(key).target_tokens
        assert completion.prompt_tokens == direct.prompt_tokens
    # Batch lines are not chat requests: the request log holds only the two direct calls.
    assert len(stub.requests()) == 2
    assert (await batch_api.find(llm, "ref", "r1")).id == created.id
    assert await batch_api.find(llm, "ref", "other") is None


async def test_completion_after_a_configured_number_of_polls(stub, llm):
    stub.state.batches.configure(polls=4)
    seen, _ = await until_done(llm, (await submit(llm)).id)
    assert seen == ["in_progress", "in_progress", "in_progress", "completed"]


@pytest.mark.parametrize(
    ("fault", "final", "answered"),
    [
        ({"kind": "line_error", "match": {"section": "market_analysis"}}, "completed", {"id-executive_summary"}),
        ({"kind": "fail"}, "failed", set()),
        ({"kind": "expire"}, "expired", set()),
    ],
)
async def test_faults(stub, llm, fault, final, answered):
    stub.add_batch_faults([fault])
    _, done = await until_done(llm, (await submit(llm)).id)
    assert done.status == final
    ok = {k for k, r in (await results(llm, done.output_file_id)).items() if r.ok}
    assert ok == answered
    if final == "failed":
        assert done.errors and done.error_file_id is None
    else:
        errors = await results(llm, done.error_file_id)
        assert set(errors) == {f"id-{k}" for k in SECTIONS} - answered and all(not r.ok for r in errors.values())


async def test_an_invalid_line_is_a_200_whose_content_is_not_json(stub, llm):
    stub.add_batch_faults([{"kind": "line_invalid_json", "match": {"section": "market_analysis"}}])
    _, done = await until_done(llm, (await submit(llm)).id)
    answer = (await results(llm, done.output_file_id))["id-market_analysis"]
    content = ChatCompletion.model_validate(answer.body).choices[0].message.content
    with pytest.raises(ValueError):
        json.loads(content)


async def test_a_bad_input_file_fails_the_batch_and_unknown_ids_are_404(stub, llm):
    file_id = await batch_api.upload(llm, b'{"custom_id": "a", "method": "GET", "url": "/v1/x", "body": {}}\n', "bad")
    created = await batch_api.create(llm, file_id, {})
    _, done = await until_done(llm, created.id)
    assert done.status == "failed" and "method/url" in done.errors[0]
    with pytest.raises(LLMError) as info:
        await batch_api.retrieve(llm, "batch-nope")
    assert info.value.kind == "LLMBatchNotFound" and not info.value.retryable


async def test_cancel(stub, llm):
    created = await submit(llm)
    assert (await batch_api.cancel(llm, created.id)).status == "cancelling"
    _, done = await until_done(llm, created.id)
    assert done.status == "cancelled" and done.output_file_id is None


async def test_the_key_is_checked(stub):
    wrong = LLMClient(api_key="wrong", base_url=stub.base_url)
    with pytest.raises(LLMError) as info:
        await batch_api.upload(wrong, b"{}\n", "x")
    assert info.value.kind == "LLMAuthenticationError"
    await wrong.close()
