"""Feeding summaries: a client's messages appended to its stored threads (the CLI's messages
file, the API's ``threads``), before a summary run starts."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from domain.summaries import ThreadInput
from storage import clients, messages
from storage.messages import AppendResult


async def append_threads(pool: asyncpg.Pool, client_id: str, threads: Sequence[ThreadInput]) -> list[AppendResult]:
    """Append each thread's messages to the client's stored threads (idempotent by message id).
    Refuses an unknown client (UnknownClient) before storing anything."""
    await clients.get(pool, client_id)
    return [
        await messages.append_messages(pool, client_id, t.thread_id, t.messages, subject=t.subject) for t in threads
    ]
