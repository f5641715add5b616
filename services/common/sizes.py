"""Byte counts as people read them, in the binary units the docs use: `10 MiB`, `16 KiB`."""

from __future__ import annotations

_UNITS = (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10))


def readable_bytes(count: int) -> str:
    """`10 MiB` for 10485760, `1.5 KiB` for 1536, `700 bytes` for 700 (two decimals at most)."""
    for unit, size in _UNITS:
        if count >= size:
            return f"{round(count / size, 2):g} {unit}"
    return f"{count} bytes"
