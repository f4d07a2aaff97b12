"""BuildKit's builder cache: what it holds, by kind, and pruning that keeps the cache mounts.

The cache mounts (type exec.cachemount) hold apt's and uv's downloads: losing them makes the
next dependency install download everything again, so a default prune leaves them alone.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from uvdocker.report import human_size, table

# The record types a default prune removes: layers and uploaded build contexts.
DEFAULT_PRUNE_TYPES = ("regular", "source.local")


def mount_name(record: dict[str, Any]) -> str:
    """What a cache mount holds, from its description ('cached mount /root/.cache/uv ...')."""
    description = record.get("Description", "")
    match = re.search(r"cached mount (\S+)", description)
    return match[1] if match else description[:40]


def usage(records: list[dict[str, Any]]) -> dict[str, int]:
    """Bytes by kind: each cache mount by its path, everything else by record type."""
    sizes: dict[str, int] = defaultdict(int)
    for record in records:
        kind = record.get("Type", "?")
        key = f"cache mount {mount_name(record)}" if kind == "exec.cachemount" else kind
        sizes[key] += int(record.get("Size") or 0)
    return dict(sizes)


def prune(api: Any, *, everything: bool, keep_storage: int, until: str) -> int:
    """Prune the builder cache; return the bytes reclaimed.

    By default only layers and build contexts unused for `until`, down to `keep_storage`;
    with `everything`, all of it, cache mounts included.
    """
    if everything:
        return int(api.prune_builds(all=True).get("SpaceReclaimed") or 0)
    reclaimed = 0
    for kind in DEFAULT_PRUNE_TYPES:
        # all=True: without it the engine prunes only "dangling" records, and those are the
        # cache mounts; the type filter then limits it to layers and contexts.
        result = api.prune_builds(
            filters={"type": kind, "until": until}, keep_storage=keep_storage, all=True
        )
        reclaimed += int(result.get("SpaceReclaimed") or 0)
    return reclaimed


def usage_table(before: dict[str, int], after: dict[str, int], reclaimed: int) -> str:
    """Builder cache by kind before and after a prune, largest first, and the bytes reclaimed."""
    kinds = sorted(set(before) | set(after), key=lambda k: -max(before.get(k, 0), after.get(k, 0)))
    rows = [(k, human_size(before.get(k, 0)), human_size(after.get(k, 0))) for k in kinds]
    rows.append(("total", human_size(sum(before.values())), human_size(sum(after.values()))))
    return (
        table(("builder cache", "before", "after"), rows) + f"\nreclaimed: {human_size(reclaimed)}"
    )
