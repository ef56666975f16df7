"""Unicode normalisation for the language-model corpus.

NFKC is the default, on purpose: it folds compatibility characters onto one spelling, so the
tokenizer does not spend vocabulary on variants that mean the same thing:

- full-width ASCII becomes ASCII (`ＡＢＣ１２３！？（）` → `ABC123!?()`), the ideographic space
  U+3000 becomes an ASCII space, `～` (U+FF5E) becomes `~`;
- half-width katakana becomes full-width (`ｶﾀｶﾅ` → `カタカナ`, `ｶﾞ` → `ガ`);
- `…` becomes `...` and `‥` becomes `..`; circled and parenthesised numbers, `㈱` and unit squares such as
  `㌔` are spelled out (`①` → `1`, `㈱` → `(株)`, `㌔` → `キロ`).

Japanese punctuation proper (`、。「」『』・ー`) is not a compatibility character and is kept. The
bundled Wikipedia text was NFKC-normalised by its publisher, so this also makes sources agree.
After NFKC we drop control and zero-width characters, turn CRLF/CR into LF, strip spaces at line
ends, and squeeze runs of blank lines to one blank line.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import numpy as np

_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200d\u2060\ufeff\ufffe]")
_TRAILING_SPACE = re.compile(r"[ \t]+\n")
_BLANK_LINES = re.compile(r"\n{3,}")


# Code points outside these ranges with a compatibility mapping are rare; they take the slow path.
_TABLE_RANGES = ((0, 0x10000), (0x1D400, 0x1D800), (0x1F100, 0x1F300), (0x2F800, 0x2FA20))


_LAYOUT_MIN = 16384  # characters

# Bits of the per-character lookup table (see _nfkc_lookup).
_SINGLE, _MULTI, _CONTROL_OR_CR, _SPACE_EXPANSION, _UNSURE = 1, 2, 4, 8, 16


@lru_cache(maxsize=1)
def _nfkc_lookup() -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
    """(bits per code point, one-character replacements, {code point: NFKC form}).

    _SINGLE: NFKC turns the character into one other character (full-width forms, U+3000, most
    half-width katakana), applied to the whole text as one array operation; _MULTI: into several
    characters (… → ..., ㈱ → (株)), replaced after; _SPACE_EXPANSION: those several include white
    space (¨ → " ̈"); _CONTROL_OR_CR: a character that normalize_text removes or rewrites after
    NFKC. NFKC never produces one of those, nor a line break (checked over every code point when
    this was written), so the input's table lookup tells whether to look.

    _UNSURE: the character, or its replacement, may combine with its neighbours (a combining
    mark, a character that composes with the one before it, or one outside the ranges of
    _nfkc_table). A text of "sure" characters only, each already in NFKC form, passes NFKC's quick
    check (every character has NFKC_QC=Yes and combining class 0), so is_normalized is skipped."""
    table = _nfkc_table()
    maybe = _composes_with_previous()
    bits = np.full(0x110000, _UNSURE, dtype=np.uint8)  # outside the ranges: unsure
    for lo, hi in _TABLE_RANGES:
        bits[lo:hi] = 0
    bits[0xD800:0xE000] = _UNSURE

    single = np.arange(0x110000, dtype=np.uint32)
    for code, mapped in table.items():
        if len(mapped) == 1:
            bits[code] = _SINGLE
            single[code] = ord(mapped)
        else:
            bits[code] = _MULTI | (_SPACE_EXPANSION if any(ch in mapped for ch in " \t\n") else 0)
    for lo, hi in _TABLE_RANGES:
        for code in range(lo, hi):
            ch = chr(code)
            if code in table:
                if any(_unsure_output(x, maybe, table) for x in table[code]):
                    bits[code] |= _UNSURE
            elif not 0xD800 <= code < 0xE000 and (ch in maybe or unicodedata.combining(ch)):
                bits[code] |= _UNSURE
    for code in (*range(0x00, 0x09), 0x0B, 0x0C, 0x0D, *range(0x0E, 0x20), *range(0x7F, 0xA0)):
        bits[code] |= _CONTROL_OR_CR
    for code in (0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF, 0xFFFE):
        bits[code] |= _CONTROL_OR_CR
    return bits, single, table


def _unsure_output(ch: str, maybe: set[str], table: dict[int, str]) -> bool:
    """Whether a character of an NFKC replacement may not be in NFKC form next to others."""
    code = ord(ch)
    in_ranges = any(lo <= code < hi for lo, hi in _TABLE_RANGES)
    return not in_ranges or code in table or ch in maybe or unicodedata.combining(ch) != 0


def _composes_with_previous() -> set[str]:
    """Characters that canonical composition can join to the character before them (NFKC_QC =
    Maybe): the second half of every primary composite, and Hangul vowel and final jamo. Only
    those in _TABLE_RANGES (composites outside them pair characters outside them, checked when
    this was written)."""
    maybe = {chr(c) for c in (*range(0x1161, 0x1176), *range(0x11A8, 0x11C3))}
    for lo, hi in _TABLE_RANGES:
        for code in range(lo, hi):
            decomposition = unicodedata.decomposition(chr(code)) if not 0xD800 <= code < 0xE000 else ""
            if decomposition and not decomposition.startswith("<"):
                parts = [chr(int(part, 16)) for part in decomposition.split()]
                if len(parts) == 2 and unicodedata.normalize("NFC", parts[0] + parts[1]) == chr(code):
                    maybe.add(parts[1])
    return maybe


@lru_cache(maxsize=1)
def _nfkc_table() -> dict[int, str]:
    """{code point: its NFKC form} for every character NFKC changes (in the ranges above)."""
    table = {}
    for lo, hi in _TABLE_RANGES:
        for code in range(lo, hi):
            ch = chr(code)
            if not 0xD800 <= code < 0xE000:
                mapped = unicodedata.normalize("NFKC", ch)
                if mapped != ch:
                    table[code] = mapped
    return table


def nfkc(text: str) -> str:
    """unicodedata.normalize("NFKC", text), several times faster on Japanese text.

    CPython decomposes and recomposes the whole string as soon as one character needs NFKC (a
    U+3000 indent is enough), which runs at ~10 MB/s on Japanese. Mapping each character to its own
    NFKC form first does not change the result: NFKC(text) ==
    NFKC(mapped text), because each replacement has the same compatibility decomposition as the
    character it replaces. If the translated text passes NFKC's quick check, it is the answer; only
    text with combining sequences (e.g. half-width ｶﾞ) still takes the full normalisation.
    """
    return _nfkc(text)[0]


def _nfkc(text: str) -> tuple[str, bool, tuple[bool, bool] | None, np.ndarray | None]:
    """(NFKC of text, whether text holds a control character or CR for normalize_text to handle,
    (whether " \n" or "\t\n" occurs, whether "\n\n\n" occurs) in the result if known, else None,
    the result's code points if known, else None).

    One table lookup over the code points finds what NFKC changes, the control characters and
    the line breaks; is_normalized runs only when a character may combine with a neighbour."""
    bits, single, table = _nfkc_lookup()
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    marks = bits.take(codes)  # take(): ~1.7× faster than bits[codes] here
    changed = ((marks & (_SINGLE | _MULTI)) != 0).nonzero()[0]  # nonzero of bool: 5× that of uint8
    special = marks & (_CONTROL_OR_CR | _SPACE_EXPANSION | _UNSURE)
    control = spaces_added = unsure = False
    if special.any():
        control = bool((special & _CONTROL_OR_CR).any())
        spaces_added = control or bool((special & _SPACE_EXPANSION).any())
        unsure = bool((special & _UNSURE).any())
    mapped = codes
    if len(changed):
        # One-to-one replacements in one array operation; the few expansions are replaced after.
        mapped = codes.copy()
        mapped[changed] = single[codes[changed]]
        text = str(memoryview(mapped), "utf-32-le")
        expand = changed[(marks[changed] & _MULTI) != 0]
        if len(expand):
            # Few distinct characters expand (…, ‥, ㈱): one str.replace each. A replacement is
            # NFKC output, which no character of which NFKC changes again, so order is free.
            for code in np.unique(codes[expand]).tolist():
                text = text.replace(chr(code), table[code])
    layout = None
    # Long texts: the line breaks and the spaces before them are those of `mapped`, looked at
    # in a few array operations (shorter ones: normalize_text's str searches cost less).
    if not spaces_added and len(mapped) >= _LAYOUT_MIN:
        newlines = (mapped == 10).nonzero()[0]
        before = mapped[newlines[newlines > 0] - 1]
        layout = (
            bool(np.any((before == 0x20) | (before == 0x09))),
            bool(np.any(newlines[2:] - newlines[:-2] == 2)),
        )
    # After an expansion, `mapped` still has the text's line breaks and spaces, not its code points.
    result_codes = mapped if len(mapped) == len(text) else None
    if not unsure or unicodedata.is_normalized("NFKC", text):
        return text, control, layout, result_codes
    return unicodedata.normalize("NFKC", text), control, None, None


def normalize_text(text: str, form: str = "NFKC") -> str:
    """Normalise one document (see the module docstring); `form` is NFKC, NFC, or none."""
    return normalize_with_codes(text, form)[0]


def normalize_with_codes(text: str, form: str = "NFKC") -> tuple[str, np.ndarray | None]:
    """normalize_text, and the result's code points as a uint32 array when NFKC's lookup already
    made them (most documents: nothing expanded, no control character, no layout to fix), so that
    the filters' Features need not encode the text again; else None."""
    layout = codes = None
    if form == "NFKC":
        # NFKC neither adds nor removes control characters or CR; `layout` tells which of the
        # two substitutions below can apply, when the NFKC step already saw the line breaks.
        text, control, layout, codes = _nfkc(text)
    else:
        if form and form.lower() != "none" and not unicodedata.is_normalized(form, text):
            text = unicodedata.normalize(form, text)
        control = True
    # Each substitution only runs when its pattern can occur: a regex scan costs more than NFKC.
    if control and "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        codes = None
    if control and _CONTROL.search(text):
        text = _CONTROL.sub("", text)
        codes = None
    if layout[0] if layout is not None else (" \n" in text or "\t\n" in text):
        text = _TRAILING_SPACE.sub("\n", text)
        layout = codes = None  # removing spaces can join line breaks ("\n \n\n" → "\n\n\n")
    if layout[1] if layout is not None else "\n\n\n" in text:
        text = _BLANK_LINES.sub("\n\n", text)
        codes = None
    stripped = text.strip()
    if len(stripped) != len(text):
        codes = None
    return stripped, codes
