"""Where the service's LLM calls go: what the stack (stack/) hands the core once it is up."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, SecretStr


class LLMEndpoint(BaseModel):
    """Where LLM calls go. ``api_key`` is a secret: it is never printed nor written to disk."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["openai", "local"]
    base_url: str | None  # None means the OpenAI default
    api_key: SecretStr
    # The single model that serves every routing tier (a local endpoint serves one model).
    model_override: str | None
