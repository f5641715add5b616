"""Discord's documented message limits, and text measuring and truncation that respect them.

Lengths are counted in UTF-16 code units, which is never less than the code points Discord
counts, so a text that fits here fits there.
"""

from __future__ import annotations

from typing import Any

CONTENT = 2000
EMBEDS_PER_MESSAGE = 10
TITLE = 256
DESCRIPTION = 4096
FIELDS = 25
FIELD_VALUE = 1024
EMBEDS_TOTAL = 6000

MARKER = "…"


def discord_len(text: str) -> int:
    """Length as Discord may count it (UTF-16 code units, an upper bound of code points)."""
    return len(text.encode("utf-16-le")) // 2


def truncate(text: str, limit: int) -> str:
    """`text` if it fits in `limit`, else its start followed by the visible marker."""
    if discord_len(text) <= limit:
        return text
    room = limit - discord_len(MARKER)
    kept = text[:room]
    while discord_len(kept) > room:
        kept = kept[: len(kept) - (discord_len(kept) - room)]
    return kept.rstrip() + MARKER


def embed_size(embed: dict[str, Any]) -> int:
    """Characters of an embed that count towards the 6000 per message."""
    fields = embed.get("fields", [])
    return (
        discord_len(embed.get("title", ""))
        + discord_len(embed.get("description", ""))
        + sum(discord_len(f.get("name", "")) + discord_len(f.get("value", "")) for f in fields)
        + discord_len(embed.get("footer", {}).get("text", ""))
        + discord_len(embed.get("author", {}).get("name", ""))
    )
