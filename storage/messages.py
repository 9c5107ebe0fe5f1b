"""Message threads per client: messages in arrival order, appended idempotently by message id."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from domain.limits import TRUSTED, quote
from domain.summaries import NewMessage, ThreadMessage
from storage.db import DB, transaction


class UnknownThread(LookupError):
    def __init__(self, client_id: str, thread_ids: Sequence[str], known: Sequence[str]):
        listed = ", ".join(known) or "none yet; send messages with `wavelaunch summary generate --messages FILE`"
        super().__init__(
            f"client {quote(client_id)} has no thread {', '.join(map(quote, thread_ids[:5]))}; its threads: {listed}"
        )
        self.thread_ids = list(thread_ids)


@dataclass(frozen=True)
class AppendResult:
    thread_id: str
    added: int
    # Messages whose id was already stored (a redelivery): left as they were.
    skipped: int
    last_seq: int


async def append_messages(
    pool: DB, client_id: str, thread_id: str, messages: Sequence[NewMessage], *, subject: str | None = None
) -> AppendResult:
    """Append ``messages`` to the client's thread (created on first use), numbering new ones after
    the thread's last message; a message id already in the thread is stored once (idempotent).

    The client must exist (asyncpg.ForeignKeyViolationError otherwise; check it first). Given a
    connection in a transaction, the append joins it."""
    async with transaction(pool) as conn:
        await conn.execute(
            """INSERT INTO message_threads (client_id, thread_id, subject) VALUES ($1, $2, $3)
               ON CONFLICT (client_id, thread_id) DO NOTHING""",
            client_id,
            thread_id,
            subject,
        )
        # The row lock serialises appends to one thread, so seqs never collide.
        last_seq = await conn.fetchval(
            "SELECT last_seq FROM message_threads WHERE client_id = $1 AND thread_id = $2 FOR UPDATE",
            client_id,
            thread_id,
        )
        ids = [m.id for m in messages]
        stored = {
            r["message_id"]
            for r in await conn.fetch(
                "SELECT message_id FROM thread_messages WHERE client_id = $1 AND thread_id = $2"
                " AND message_id = ANY($3::text[])",
                client_id,
                thread_id,
                ids,
            )
        }
        fresh, seen = [], set(stored)
        for message in messages:
            if message.id not in seen:
                seen.add(message.id)
                fresh.append(message)
        rows = [
            (client_id, thread_id, last_seq + i, m.id, m.author.value, m.text, m.sent_at)
            for i, m in enumerate(fresh, start=1)
        ]
        if rows:
            await conn.executemany(
                "INSERT INTO thread_messages (client_id, thread_id, seq, message_id, author, text, sent_at)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7)",
                rows,
            )
            last_seq += len(rows)
            await conn.execute(
                "UPDATE message_threads SET last_seq = $3, updated_at = now(),"
                " subject = coalesce(subject, $4) WHERE client_id = $1 AND thread_id = $2",
                client_id,
                thread_id,
                last_seq,
                subject,
            )
    return AppendResult(thread_id, added=len(rows), skipped=len(messages) - len(rows), last_seq=last_seq)


async def thread_ids(pool: asyncpg.Pool, client_id: str) -> list[str]:
    """The client's threads, oldest first."""
    rows = await pool.fetch(
        "SELECT thread_id FROM message_threads WHERE client_id = $1 ORDER BY created_at, thread_id", client_id
    )
    return [r["thread_id"] for r in rows]


async def resolve_threads(pool: asyncpg.Pool, client_id: str, wanted: Sequence[str] | None) -> list[str]:
    """``wanted`` (deduplicated, in order), or every thread of the client when None; raises
    UnknownThread naming the threads the client does not have."""
    known = await thread_ids(pool, client_id)
    if wanted is None:
        return known
    missing = [t for t in dict.fromkeys(wanted) if t not in known]
    if missing:
        raise UnknownThread(client_id, missing, known)
    return list(dict.fromkeys(wanted))


async def messages_after(pool: asyncpg.Pool, client_id: str, thread_id: str, after_seq: int = 0) -> list[ThreadMessage]:
    """The thread's messages with seq > ``after_seq``, in order (all of them for 0)."""
    rows = await pool.fetch(
        "SELECT seq, message_id AS id, author, text, sent_at FROM thread_messages"
        " WHERE client_id = $1 AND thread_id = $2 AND seq > $3 ORDER BY seq",
        client_id,
        thread_id,
        after_seq,
    )
    return [ThreadMessage.model_validate(dict(r), context=TRUSTED) for r in rows]


async def all_messages(pool: asyncpg.Pool, client_id: str) -> dict[str, list[ThreadMessage]]:
    """Every thread of the client with all its messages (what the naive way re-sends)."""
    return {t: await messages_after(pool, client_id, t) for t in await thread_ids(pool, client_id)}
