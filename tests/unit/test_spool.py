"""The answer spool: what a bought answer owes Postgres survives the process, and is forgotten
once paid."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from storage.spool import KeptAnswer, Owed, Settlement, Spool
from storage.usage import UsageRecord


def owed() -> Owed:
    row = UsageRecord(call_id="c1", operation="generate_section", model="gpt-4.1", completion_tokens=500)
    return Owed(
        rows={"c1": row},
        settlements={"7": Settlement(reservation_id=7, tokens=900, cost=Decimal("0.0123"))},
        answer=KeptAnswer(content={"summary": "é ∑ text"}, figures={"section_key": "executive_summary"}),
    )


def test_a_new_spool_reads_what_an_old_one_wrote(tmp_path: Path) -> None:
    Spool(tmp_path).write("work-1", owed())
    back = Spool(tmp_path).read("work-1")  # another process, same directory
    assert back == owed()
    assert Spool(tmp_path).read("work-2") is None


def test_paid_items_are_struck_off_and_an_empty_entry_is_deleted(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.write("w", owed())
    spool.update("w", lambda o: o.rows.pop("c1"))
    spool.update("w", lambda o: o.settlements.pop("7"))
    assert spool.pending() == 1
    spool.update("w", lambda o: setattr(o, "answer", None))
    assert spool.pending() == 0
    assert list(tmp_path.iterdir()) == []


def test_an_unreadable_entry_is_ignored(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.write("w", owed())
    next(tmp_path.glob("*.json")).write_text('{"rows": ')  # torn
    assert spool.read("w") is None


def test_no_directory_keeps_nothing() -> None:
    spool = Spool()
    spool.write("w", owed())
    assert spool.read("w") is None and spool.pending() == 0


def test_an_addition_is_on_disk_at_once_and_a_strike_off_is_not_rewritten(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.update("w", lambda o: o.rows.__setitem__("c1", owed().rows["c1"]))
    assert Spool(tmp_path).read("w") == Owed(rows=owed().rows)  # another process sees the addition
    [path] = tmp_path.glob("*.json")
    listed = path.read_bytes()
    spool.update("w", lambda o: o.settlements.__setitem__("7", owed().settlements["7"]))
    assert Spool(tmp_path).read("w") == Owed(rows=owed().rows, settlements=owed().settlements)
    listed = path.read_bytes()
    spool.update("w", lambda o: o.rows.pop("c1"))  # paid: struck off in memory only
    assert path.read_bytes() == listed
    # The file still lists the paid row (redoing it is idempotent); this spool knows it is paid,
    # so paying the settlement as well leaves nothing owed and the file goes.
    spool.update("w", lambda o: o.settlements.pop("7"))
    assert list(tmp_path.iterdir()) == []
