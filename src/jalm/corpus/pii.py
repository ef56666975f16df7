"""PII masking: personal contact and payment details replaced by placeholders, counted per kind.

What is masked (each kind can be switched off in `[pii] kinds`):

- email: `name@domain.tld` → `<email>`;
- phone: Japanese numbers with separators (03-1234-5678, 090-1234-5678, 0120-123-456, (03) 1234-5678,
  03 1234 5678), mobile numbers without them (09012345678), and +81 forms (+81-90-1234-5678,
  +81 3 1234 5678): 10 or 11 digits in all, as Japanese numbers have → `<phone>`;
- ip: IPv4 and IPv6 addresses that are globally routable → `<ip>`. Private ranges (10/8, 172.16/12,
  192.168/16, fc00::/7), loopback (127.0.0.1, ::1), link-local, the documentation ranges (192.0.2/24,
  2001:db8::/32 ...) and 0.0.0.0 are kept: they name no one (every home router is 192.168.0.1) and
  technical prose is full of them. A dotted quad after "version", "バージョン", "ver" or "v" is a
  version number, not an address, and is kept;
- credit_card: 13-19 digits, plain or in groups of 4 split by spaces or hyphens, that start like a card
  issuer's numbers (Visa 4, Mastercard 51-55/2221-2720, Amex 34/37, JCB 35, Diners 36/300-305,
  Discover 6011/65) AND pass the Luhn check → `<credit_card>`.

Not masked, on purpose: postal codes (〒123-4567 names an area of hundreds to thousands of people, and
mostly appears in the published addresses of companies and offices: off by default, `postal_code` in
`kinds` turns it on → `<postal_code>`), dates, version numbers, ISBNs and prices (none has a leading 0
with the digit count of a phone number, an issuer prefix with a valid Luhn digit, or a global address).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

import numpy as np

KINDS = ("email", "phone", "ip", "credit_card", "postal_code")
DEFAULT_KINDS = ("email", "phone", "ip", "credit_card")
PLACEHOLDERS = {kind: f"<{kind}>" for kind in KINDS}

_EMAIL = r"[A-Za-z0-9][A-Za-z0-9._%+\-]*@[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}"
_PHONE = (
    r"\+81[\s\-]?(?:\(0\))?\d{1,4}[\s\-]?\d{1,4}[\s\-]?\d{3,4}"
    r"|\(0\d{1,4}\)\s?\d{1,4}[\s\-]\d{3,4}"
    r"|0\d{1,4}[\-\s]\d{1,4}[\-\s]\d{3,4}"
    r"|0[5789]0\d{8}"
)
_IPV4 = r"(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV6 = r"(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}"
_CARD = r"\d{4}(?P<sep>[ \-])\d{4}(?P=sep)\d{4}(?P=sep)\d{1,7}|\d{13,19}"
_POSTAL = r"〒\s?\d{3}-?\d{4}"
# One scan for every kind. Digits, letters and separators must not continue a match on either side,
# so a phone number is never cut out of a longer digit string and an address out of a longer token.
_PII = re.compile(
    rf"(?P<email>(?<![\w.%+\-]){_EMAIL})"
    rf"|(?P<postal>{_POSTAL})(?!\d)"
    rf"|(?<![\w:.\-+])(?:(?P<ip6>{_IPV6})(?![\w:])"
    rf"|(?P<ip4>{_IPV4})(?![\w]|\.\d)"
    rf"|(?P<card>{_CARD})(?![\w]|[\-.]\d)"
    rf"|(?P<phone>{_PHONE})(?![\w]|[\-.]\d))",
    re.ASCII,  # \w and \d: ASCII only, so "電話03-1234-5678" and "宛先taro@example.jp" are found
)
_VERSION_BEFORE = re.compile(r"(?i)(?:version|ver\.?|バージョン|v)\s*$")
_ISSUERS = re.compile(r"4|5[1-5]|2(?:22[1-9]|2[3-9]\d|[3-6]\d\d|7[01]\d|720)|3[47]|35|36|30[0-5]|6011|65")


def luhn_ok(digits: str) -> bool:
    """The Luhn check digit test that every payment card number passes."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _phone_ok(match: str) -> bool:
    digits = re.sub(r"\D", "", match)
    if match.startswith("+81"):
        digits = "0" + digits[2:]
    return len(digits) in (10, 11) and digits[1] != "0"


def _ip_ok(match: str, text: str, start: int) -> bool:
    try:
        address = ipaddress.ip_address(match)
    except ValueError:
        return False
    if address.version == 6 and len([g for g in match.split(":") if g]) < 3:
        return False  # "a::b", "std::" and the like: too few groups to be an address someone wrote
    if address.version == 4 and _VERSION_BEFORE.search(text, max(0, start - 12), start):
        return False
    return address.is_global


def _card_ok(match: str) -> bool:
    digits = match.replace(" ", "").replace("-", "")
    return 13 <= len(digits) <= 19 and _ISSUERS.match(digits) is not None and luhn_ok(digits)


def mask_pii(
    text: str, kinds: tuple[str, ...] | list[str] = DEFAULT_KINDS, codes: np.ndarray | None = None
) -> tuple[str, dict[str, int]]:
    """Replace the PII of `kinds` in `text` by placeholders; return (text, {kind: replacements}).
    `codes`: the text's code points, if the caller has them.

    Every kind is written in ASCII letters, digits and a few separators (and 〒), so the full
    pattern only runs on the runs of those characters around a cheap trigger (digits around a
    separator, ten digits in a row, an @; found with array operations): many times faster than
    scanning the whole text with it, as Japanese prose has years and counts in most paragraphs but
    almost no PII."""
    wanted = set(kinds)
    counts: dict[str, int] = {}
    offset = 0  # where the window being masked starts in `text`

    def replace(m: re.Match[str]) -> str:
        group, found = m.lastgroup, m.group()
        kind = None
        if group == "email":
            kind = "email"
        elif group == "postal":
            kind = "postal_code"
        elif group in ("ip4", "ip6"):
            kind = "ip" if _ip_ok(found, text, offset + m.start()) else None
        elif group == "card":
            kind = "credit_card" if _card_ok(found) else None
        elif group == "phone":
            kind = "phone" if _phone_ok(found) else None
        if kind is None or kind not in wanted:
            return found
        counts[kind] = counts.get(kind, 0) + 1
        return PLACEHOLDERS[kind]

    pieces, done, n = [], 0, len(text)
    for start in _trigger_positions(text, codes):
        if start < done:
            continue
        end = start + 1
        while start > done and text[start - 1] in _TOKEN_CHARS:
            start -= 1
        while end < n and text[end] in _TOKEN_CHARS:
            end += 1
        offset = start
        pieces += [text[done:start], _PII.sub(replace, text[start:end])]
        done = end
    if not pieces:
        return text, counts
    pieces.append(text[done:])
    return "".join(pieces), counts


def _trigger_positions(text: str, codes: np.ndarray | None = None) -> list[int]:
    """Positions that may be inside PII: an @, a digit followed (after one or two of - . : ( ) space)
    by a digit, or the start of ten digits in a row. Array operations over the positions of the
    digits (a few in a hundred characters of Japanese prose): ~10× a regular-expression scan, and
    most documents have none."""
    if codes is None:
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    n = len(codes)
    at = np.flatnonzero(codes == 64)
    digits = np.flatnonzero((codes - 48) < 10)  # unsigned: codes below "0" wrap to large values
    if len(digits) < 2:
        return at.tolist()
    # A digit, a separator, then a digit or a separator and a digit (padded past the text's end).
    padded = np.concatenate((codes, np.zeros(3, dtype=np.uint32)))
    after = [padded[digits + k] for k in (1, 2, 3)]
    sep = [_SEPARATOR.take(np.minimum(c, 127)) for c in after]
    digit = [(c - 48) < 10 for c in after]
    hits = sep[0] & (digit[1] | (sep[1] & digit[2] & (digits + 3 < n))) & (digits + 2 < n)
    found = digits[hits]
    if len(digits) >= 10:  # ten digits in a row: the tenth digit after one is nine places on
        ten = digits[:-9][digits[9:] - digits[:-9] == 9]
        if len(ten):
            found = np.union1d(found, ten)
    if len(at):
        found = np.union1d(found, at)
    return found.tolist()


_SEPARATOR = np.zeros(128, dtype=bool)
_SEPARATOR[[ord(c) for c in "-.:() "]] = True
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._%+-@:() \t〒")


def check_kinds(kinds: Any, where: str) -> None:
    from jalm.errors import JalmError

    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise JalmError(
            f"{where}: unknown PII kind(s) {', '.join(map(repr, unknown))} (known: {', '.join(KINDS)})"
        )
