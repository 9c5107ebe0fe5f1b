"""The OpenAI client behind one small interface: a structured (JSON schema) completion."""

from __future__ import annotations

import asyncio
import copy
import json
import time
from dataclasses import dataclass
from typing import Any

import openai
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletion

from llm.errors import call_timed_out, map_openai_error
from llm.timeouts import CallTimeouts


@dataclass(frozen=True)
class Completion:
    content: str
    model: str
    finish_reason: str | None
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    duration_ms: int
    # The tier that served it, as the response names it ("flex", "default"); None when unsaid.
    service_tier: str | None = None


class LLMClient:
    """Thin wrapper over ``AsyncOpenAI(max_retries=0)``: Temporal owns retries."""

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None = None,
        timeouts: CallTimeouts = CallTimeouts(),
        send_prompt_cache_key: bool = True,
        structured_output: str = "json_schema",
    ):
        # The client-wide timeout covers the Batch API helpers; each completion sets its own.
        self._client = AsyncOpenAI(api_key=api_key, base_url=base_url, max_retries=0, timeout=timeouts.max_seconds)
        self._timeouts = timeouts
        self.endpoint = str(self._client.base_url).rstrip("/")
        self._send_prompt_cache_key = send_prompt_cache_key
        # "json_schema" is OpenAI's strict mode; llama.cpp's server only constrains output to a
        # schema given as {"type": "json_object", "schema": ...}.
        self._structured_output = structured_output

    @property
    def structured_output(self) -> str:
        return self._structured_output

    def timeout_for(self, max_completion_tokens: int) -> float:
        """Seconds a completion allowing ``max_completion_tokens`` is waited for (the local server
        stops at LOCAL_MAX_TOKENS whatever the request allows)."""
        if self._structured_output == "json_object":
            max_completion_tokens = min(max_completion_tokens, LOCAL_MAX_TOKENS)
        return self._timeouts.for_output(max_completion_tokens)

    @property
    def openai(self) -> AsyncOpenAI:
        """The underlying client, for the Batch API helpers (``llm.batch_api``)."""
        return self._client

    def request_body(
        self,
        *,
        model: str,
        messages: list[dict[str, str]],
        schema_name: str,
        schema: dict[str, Any],
        max_completion_tokens: int,
        prompt_cache_key: str | None = None,
        temperature: float | None = None,
        service_tier: str | None = None,
    ) -> dict[str, Any]:
        """The chat-completion request body for a structured answer: what ``complete_json`` sends,
        and what a Batch API line carries, so both paths ask the same question."""
        body: dict[str, Any] = {
            "model": model,
            "messages": messages,
            "response_format": self._response_format(schema_name, schema),
            "max_completion_tokens": max_completion_tokens,
        }
        if prompt_cache_key and self._send_prompt_cache_key:
            body["prompt_cache_key"] = prompt_cache_key
        if temperature is not None:
            body["temperature"] = temperature
        if service_tier is not None:
            body["service_tier"] = service_tier
        if self._structured_output == "json_object":
            # llama-cpp-python's server ignores max_completion_tokens (it reads only the older
            # max_tokens), so without this a runaway answer runs on to the end of the context.
            body["max_tokens"] = min(max_completion_tokens, LOCAL_MAX_TOKENS)
        return body

    async def complete_json(
        self,
        *,
        model: str,
        messages: list[dict[str, str]],
        schema_name: str,
        schema: dict[str, Any],
        max_completion_tokens: int,
        prompt_cache_key: str | None = None,
        temperature: float | None = None,
        service_tier: str | None = None,
        timeout_seconds: float | None = None,
    ) -> Completion:
        """One chat completion constrained to ``schema``; raises LLMError on failure, a retryable
        ``LLMTimeout`` when no answer came within ``timeout_seconds`` (by default
        ``timeout_for(max_completion_tokens)``). ``service_tier``: the API's parameter ("flex")."""
        body = self.request_body(
            model=model,
            messages=messages,
            schema_name=schema_name,
            schema=schema,
            max_completion_tokens=max_completion_tokens,
            prompt_cache_key=prompt_cache_key,
            temperature=temperature,
            service_tier=service_tier,
        )
        seconds = timeout_seconds if timeout_seconds is not None else self.timeout_for(max_completion_tokens)
        started = time.monotonic()
        try:
            # httpx's timeout bounds each read, not the whole answer: the deadline does that.
            async with asyncio.timeout(seconds):
                response = await self._client.chat.completions.create(**body, timeout=seconds)
        except TimeoutError:
            raise call_timed_out(self.endpoint, seconds, max_completion_tokens) from None
        except openai.OpenAIError as err:
            raise map_openai_error(err, model=model, endpoint=self.endpoint, timeout=seconds) from err
        return self.completion(response, model, int((time.monotonic() - started) * 1000))

    def completion(self, response: ChatCompletion, model: str, duration_ms: int) -> Completion:
        """A chat completion's answer and billed usage (from a direct call or a Batch API line)."""
        usage = response.usage
        details = getattr(usage, "prompt_tokens_details", None) if usage else None
        choice = response.choices[0]
        content = choice.message.content or ""
        if self._structured_output == "json_object":
            content = _reencode_control_chars(content)
        return Completion(
            content=content,
            model=response.model or model,
            finish_reason=choice.finish_reason,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            cached_tokens=(getattr(details, "cached_tokens", 0) or 0) if details else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            duration_ms=duration_ms,
            service_tier=response.service_tier,
        )

    async def embed(self, *, model: str, text: str, dimensions: int) -> tuple[list[float], int]:
        """One embedding and the tokens it was billed for; raises LLMError on failure."""
        seconds = self._timeouts.base_seconds  # an embedding writes no tokens
        try:
            response = await self._client.embeddings.create(
                model=model, input=text, dimensions=dimensions, timeout=seconds
            )
        except openai.OpenAIError as err:
            raise map_openai_error(err, model=model, endpoint=self.endpoint, timeout=seconds) from err
        return list(response.data[0].embedding), response.usage.prompt_tokens

    def _response_format(self, name: str, schema: dict[str, Any]) -> dict[str, Any]:
        if self._structured_output == "json_object":
            return {"type": "json_object", "schema": _bounded_arrays(schema)}
        return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}

    async def close(self) -> None:
        await self._client.close()


# Local (llama.cpp) mode only. Gemma 3 270M's valid sections measured 40-620 tokens; at the
# 4-15 tokens/s measured on 2 busy cores this cap keeps a runaway answer (cut off, then
# retried) under about 4.5 minutes, inside the call timeout (llm.timeouts) and the cap.
LOCAL_MAX_TOKENS = 1024

# Local (llama.cpp) mode only. The server compiles the schema into a grammar, which honours
# maxItems: without it the small model sometimes runs a list on for dozens of junk items until
# it is cut off. The bound is not in the output models, so validation and the OpenAI strict
# schema are unchanged.
LOCAL_MAX_ITEMS = 5


def _bounded_arrays(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``schema`` with every array limited to LOCAL_MAX_ITEMS items."""
    bounded = copy.deepcopy(schema)

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "array":
                node.setdefault("maxItems", LOCAL_MAX_ITEMS)
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for item in node:
                visit(item)

    visit(bounded)
    return bounded


def _reencode_control_chars(content: str) -> str:
    """llama-cpp-python's schema grammar lets raw control characters (mostly newlines) into JSON
    strings, which strict JSON parsing rejects; re-encode such output with them escaped. Output
    that is not JSON even then is returned as it is, for validation to reject."""
    try:
        json.loads(content)
        return content
    except ValueError:
        pass
    try:
        return json.dumps(json.loads(content, strict=False), ensure_ascii=False)
    except ValueError:
        return content
