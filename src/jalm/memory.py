"""How much memory this machine (or its container) has: every stage that sizes its work reads it here."""

from __future__ import annotations

import os


def machine_memory() -> int:
    """This machine's RAM (from the page count), or the container's cgroup limit when that is lower."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path, encoding="ascii") as file:
                limit = file.read().strip()
        except OSError:
            continue
        if limit.isdigit():
            memory = min(memory, int(limit))
    return memory
