"""Bytes of a web page → text, without mojibake: Japanese pages still come in Shift_JIS (cp932),
EUC-JP and ISO-2022-JP, often with a missing or wrong charset.

The candidates, in order: a byte-order mark, the HTTP header's charset, the page's own declaration
(<meta charset>, <meta http-equiv="Content-Type">, <?xml encoding?>), UTF-8, then detection
(uchardet, through resiliparse; 7-bit bytes with escape sequences are ISO-2022-JP), then EUC-JP and
Shift_JIS themselves. A Western
single-byte declaration (ISO-8859-1, windows-1252, ASCII: a common server default) decodes any
bytes, so it is tried last. Each is tried strictly (no replacement characters). The first that
decodes and does not look like mojibake wins; if all that decode look like mojibake, the first of
them wins (a Latin-1 page is Latin-1, and the language filters judge it); if none decodes, the page
is undecodable and the caller quarantines it with the reason this module gives.

"Looks like mojibake": half the non-ASCII characters come in runs of Latin-1 characters (multi-byte
characters read one byte at a time), or more than a third of them are Latin-1 letters, half-width
katakana, C1 controls or private-use characters, which is what Japanese bytes decoded with a
Western code page (or EUC-JP bytes decoded as Shift_JIS) turn into.
"""

from __future__ import annotations

import codecs
import re
from typing import NamedTuple

# WHATWG labels (and common misspellings) → Python codecs to try, in order. Shift_JIS is cp932
# (Windows-31J) on the web; the ISO-2022-JP and EUC-JP extensions decode what the plain codec refuses.
_JAPANESE = {
    "shift_jis": ("cp932", "shift_jis_2004"),
    "euc_jp": ("euc_jp", "euc_jis_2004", "cp932"),
    "iso2022_jp": ("iso2022_jp_ext", "iso2022_jp_2", "iso2022_jp_2004"),
}
_ALIASES = {
    "shift_jis": "shift_jis",
    "shift-jis": "shift_jis",
    "sjis": "shift_jis",
    "x-sjis": "shift_jis",
    "ms_kanji": "shift_jis",
    "csshiftjis": "shift_jis",
    "windows-31j": "shift_jis",
    "cp932": "shift_jis",
    "shift_jis_2004": "shift_jis",
    "ms932": "shift_jis",
    "x-ms-cp932": "shift_jis",
    "euc-jp": "euc_jp",
    "euc_jp": "euc_jp",
    "euc_jis_2004": "euc_jp",
    "x-euc-jp": "euc_jp",
    "eucjp": "euc_jp",
    "cseucpkdfmtjapanese": "euc_jp",
    "iso-2022-jp": "iso2022_jp",
    "iso2022jp": "iso2022_jp",
    "iso2022_jp": "iso2022_jp",
    "iso2022_jp_ext": "iso2022_jp",
    "csiso2022jp": "iso2022_jp",
    "jis": "iso2022_jp",
}
# Western single-byte labels: WHATWG decodes them all as windows-1252. A page declaring one of these
# that holds Japanese bytes is the classic mojibake source, so the declaration does not end the search.
_WESTERN = {"iso-8859-1", "iso8859-1", "latin1", "latin-1", "us-ascii", "ascii", "windows-1252", "cp1252"}
_META_WINDOW = 4096  # bytes scanned for a declaration (the HTML spec says 1024; real pages put it later)
_META = re.compile(
    rb"""<meta[^>]+?charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)|<\?xml[^>]+?encoding\s*=\s*["']([A-Za-z0-9._:-]+)""",
    re.IGNORECASE,
)
# Latin-1 supplement letters and symbols, C1 controls, half-width katakana, private use, U+FFFD.
_MOJIBAKE = re.compile("[\u0080-\u00ff\uff61-\uff9f\ue000-\uf8ff\ufffd]")
_MOJIBAKE_SHARE = 1 / 3
_MIN_NON_ASCII = 8  # too few non-ASCII characters to judge


class Decoded(NamedTuple):
    text: str | None  # None: undecodable (see problem)
    encoding: str | None  # the Python codec used
    source: str  # bom | header | meta | utf-8 | detected | ascii
    problem: str | None = None


def codecs_for(label: str | None) -> tuple[str, ...]:
    """Python codecs for a charset label, most likely first; () for an unknown or missing label."""
    if not label:
        return ()
    name = label.strip().strip("\"'").lower()
    if name in _ALIASES:
        return _JAPANESE[_ALIASES[name]]
    if name in _WESTERN:
        return ("cp1252",)  # not latin-1, which decodes any bytes: no candidate is then a mojibake source
    if name in ("utf8", "utf-8", "unicode-1-1-utf-8", "x-unicode20utf8"):
        return ("utf-8",)
    try:
        return (codecs.lookup(name).name,)
    except LookupError:
        return ()


def declared_in_page(body: bytes) -> str | None:
    """The charset a page declares in its first bytes (<meta charset>, http-equiv or <?xml?>)."""
    match = _META.search(body, 0, _META_WINDOW)
    if match is None:
        return None
    return (match.group(1) or match.group(2)).decode("ascii", "replace")


def looks_like_mojibake(text: str) -> bool:
    if text.isascii():
        return False
    non_ascii = sum(1 for c in text if ord(c) > 127) if len(text) < 4096 else _non_ascii(text)
    # Multi-byte characters read as a single-byte code page come out as runs of Latin-1 characters
    # ("ã\x81\x93", "¤Î"); real Latin text has its accents one at a time. This needs no minimum count,
    # so a page with a Japanese title alone is caught too.
    if 2 * sum(len(run) for run in _LATIN_RUN.findall(text)) >= non_ascii:
        return True
    if non_ascii < _MIN_NON_ASCII:
        return False
    return len(_MOJIBAKE.findall(text)) > _MOJIBAKE_SHARE * non_ascii


_LATIN_RUN = re.compile("[\u0080-\u00ff]{2,}")


def _non_ascii(text: str) -> int:
    # Counting through UTF-8 is faster than a Python loop over characters: each non-ASCII character
    # is 2-4 bytes, of which exactly one is a lead byte (not 10xxxxxx).
    data = text.encode("utf-8")
    return len(data) - len(data.translate(None, _NON_ASCII_LEADS))


_NON_ASCII_LEADS = bytes(range(0xC0, 0x100))


def _strict(body: bytes, codec: str) -> str | None:
    try:
        return body.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return None


def detect(body: bytes) -> str | None:
    """uchardet's guess (resiliparse), as a charset label; None when it has none."""
    from resiliparse.parse.encoding import detect_encoding

    # html5_compatible=False keeps EUC-JP and ISO-2022-JP apart from their WHATWG supersets.
    return detect_encoding(body, html5_compatible=False) or None


def decode_page(body: bytes, header_charset: str | None = None) -> Decoded:
    """Decode a page's bytes (see the module's docstring for the order of candidates)."""
    if body.isascii() and _ESCAPE not in body:
        return Decoded(body.decode("ascii"), "ascii", "ascii")
    if body.startswith(codecs.BOM_UTF8):
        text = _strict(body[3:], "utf-8")
        if text is not None:
            return Decoded(text, "utf-8", "bom")
    for bom, codec in ((codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")):
        if body.startswith(bom):
            text = _strict(body[2:], codec)
            if text is not None:
                return Decoded(text, codec, "bom")
    meta = declared_in_page(body)
    # A Western single-byte declaration decodes any bytes: it comes after UTF-8 and detection.
    strong = [
        (s, label) for s, label in (("header", header_charset), ("meta", meta)) if label and not _weak(label)
    ]
    weak = [(s, label) for s, label in (("header", header_charset), ("meta", meta)) if label and _weak(label)]
    tried: list[str] = []
    fallback: Decoded | None = None
    # Last, for pages the detector misjudges (a few Japanese characters among much ASCII markup), the
    # Japanese codecs themselves: EUC-JP first, as Shift_JIS decodes much EUC-JP (as half-width kana).
    fallback_codecs = ("euc_jp", "cp932")
    for source, label in [*strong, ("utf-8", "utf-8"), ("detected", None), ("fallback", None), *weak]:
        if source == "detected":
            label = "iso2022_jp" if body.isascii() else detect(body)  # 7-bit with escapes: ISO-2022-JP
        for codec in fallback_codecs if source == "fallback" else codecs_for(label):
            if codec in tried or (codec == "utf-8" and body.isascii()):  # 7-bit with escapes: not UTF-8
                continue
            tried.append(codec)
            text = _strict(body, codec)
            if text is None:
                continue
            # Valid UTF-8 with multi-byte characters does not happen by chance: no need to judge it.
            if codec == "utf-8" or not looks_like_mojibake(text):
                return Decoded(text, codec, source)
            fallback = fallback or Decoded(text, codec, source)
    if fallback is not None:
        return fallback
    if body.isascii():  # stray escape characters, not ISO-2022-JP
        return Decoded(body.decode("ascii"), "ascii", "ascii")
    said = [f"{name} {label}" for name, label in (("header", header_charset), ("meta", meta)) if label]
    detail = ", ".join(said + [f"tried {', '.join(tried) or 'nothing'}"])
    return Decoded(None, None, "none", f"undecodable page ({detail})")


_ESCAPE = b"\x1b"


def _weak(label: str) -> bool:
    return label.strip().strip("\"'").lower() in _WESTERN
