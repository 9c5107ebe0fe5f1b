"""JSON files a person hands the CLI (client records, messages), read within the input limits.

Every way a file can be wrong is said in one line naming the file: missing, a directory,
unreadable, over FILE_BYTES, not UTF-8, not JSON, nested too deep or carrying control
characters (domain/limits.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from domain.limits import FILE_BYTES, InputRefused, parse_json


def read_json_file(path: Path) -> Any:
    """The parsed contents of ``path``; raises InputRefused saying what is wrong with it."""
    try:
        if not path.exists():
            raise InputRefused([f"{path}: no such file"])
        if path.is_dir():
            raise InputRefused([f"{path}: is a directory, not a JSON file"])
        size = path.stat().st_size
        if size > FILE_BYTES:
            raise InputRefused([f"{path}: {size:,} bytes; at most {FILE_BYTES:,}"])
        raw = path.read_bytes()
    except OSError as err:
        raise InputRefused([f"{path}: cannot be read ({err.strerror or err})"]) from None
    try:
        return parse_json(raw, str(path))
    except InputRefused as err:
        # Name the file in each line (what parse_json says about a field starts with its path).
        named = [p if p.startswith(str(path)) else f"{path}: {p}" for p in err.problems]
        raise type(err)(named) from None
