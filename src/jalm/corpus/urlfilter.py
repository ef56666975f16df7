"""URL block and allow lists from files the user brings, checked before any HTML work (cheap).

A list file has one entry per line (blank lines and `#` comments ignored):
- a domain, `example.com` (or `*.example.com`): that host and all its subdomains;
- a URL pattern with `*` wildcards, matched against the whole URL, case-insensitively:
  `*://example.org/ads/*`, `*/wp-login.php*`, or `*` (everything);
- `re:` and a regular expression, searched in the whole URL: `re:[?&]session_id=`.

A document whose URL matches the block list is rejected (rule `url_filter`, with the entry and
where it came from as evidence), unless its URL also matches the allow list: the allow list holds
exceptions. Block everything (`*`) and allow a few domains to keep only those. Documents without
a URL pass.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from jalm.errors import JalmError


@dataclass
class UrlList:
    """The entries of one or more list files: domains in a set, patterns in one regular expression."""

    domains: dict[str, str] = field(default_factory=dict)  # domain → "file:line"
    patterns: list[tuple[re.Pattern[str], str, str]] = field(default_factory=list)  # (regex, entry, where)

    def match(self, url: str, host: str) -> str | None:
        """The matching entry and where it came from ("example.com (block.txt:3)"), or None."""
        parts = host.split(".")
        for i in range(len(parts)):
            where = self.domains.get(".".join(parts[i:]))
            if where is not None:
                return f"domain {'.'.join(parts[i:])} ({where})"
        for regex, entry, where in self.patterns:
            if regex.search(url):
                return f"pattern {entry} ({where})"
        return None

    def __bool__(self) -> bool:
        return bool(self.domains or self.patterns)


_DOMAIN = re.compile(r"^(?:\*\.)?([a-z0-9-]+(?:\.[a-z0-9-]+)*\.?)$", re.IGNORECASE)


def load_list(paths: list[str]) -> UrlList:
    out = UrlList()
    for path in paths:
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except OSError as error:
            raise JalmError(f"{path}: cannot read URL list ({error.strerror})") from None
        for number, line in enumerate(lines, start=1):
            entry = line.split("#", 1)[0].strip() if not line.lstrip().startswith("re:") else line.strip()
            if not entry:
                continue
            where = f"{Path(path).name}:{number}"
            if entry.startswith("re:"):
                try:
                    out.patterns.append((re.compile(entry[3:], re.IGNORECASE), entry, where))
                except re.error as error:
                    raise JalmError(f"{path}:{number}: not a regular expression ({error})") from None
            elif (match := _DOMAIN.match(entry)) and "*" not in entry[2:]:
                out.domains.setdefault(match.group(1).rstrip(".").lower(), where)
            else:
                regex = re.compile(fnmatch.translate(entry), re.IGNORECASE)
                out.patterns.append((regex, entry, where))
    return out


class UrlFilter:
    """check(url) → a rejection reason or None."""

    def __init__(self, block: list[str], allow: list[str]) -> None:
        self.block = load_list(block)
        self.allow = load_list(allow)

    def __bool__(self) -> bool:
        return bool(self.block)

    def check(self, url: str) -> str | None:
        try:
            host = (urlsplit(url).hostname or "").lower()
        except ValueError:  # a malformed URL (bad port, bad IPv6): patterns still apply
            host = ""
        blocked = self.block.match(url, host)
        if blocked is None or self.allow.match(url, host) is not None:
            return None
        return f"url_filter: blocked by {blocked}"


_CACHE: dict[tuple, UrlFilter] = {}


def url_filter(block: list[str], allow: list[str]) -> UrlFilter:
    """One UrlFilter per process and set of files (a block list can hold millions of domains: read
    once per worker, not once per shard); a file changed on disk is read again."""

    def stamp(paths: list[str]) -> tuple:
        return tuple((p, Path(p).stat().st_mtime_ns if Path(p).exists() else None) for p in paths)

    key = (stamp(block), stamp(allow))
    if key not in _CACHE:
        _CACHE[key] = UrlFilter(block, allow)
    return _CACHE[key]
