"""Character classes of Japanese text, counted in C speed through a numpy lookup table.

Every filter that looks at characters (Japanese share, kana ratios, symbols, n-gram repetition)
works on the text's code points as a uint32 array, so a document is converted once and each
statistic is a vectorised pass rather than a Python loop over characters.
"""

from __future__ import annotations

import numpy as np

# Class ids. Katakana includes the prolonged sound mark ー and the middle dot ・ (both in the
# katakana block); kanji includes 々〆〇 and the CJK extension planes.
OTHER, HIRAGANA, KATAKANA, KANJI, LATIN, DIGIT, SPACE, JA_PUNCT, ASCII_SYMBOL, MARKUP = range(10)
N_CLASSES = 10


def _build_table() -> np.ndarray:
    table = np.zeros(0x110000, dtype=np.uint8)
    table[0x3041:0x30A0] = HIRAGANA
    table[0x30A0:0x3100] = KATAKANA
    table[0x31F0:0x3200] = KATAKANA  # katakana phonetic extensions
    table[0xFF66:0xFF9E] = KATAKANA  # half-width katakana (only seen without NFKC)
    for lo, hi in ((0x4E00, 0xA000), (0x3400, 0x4DC0), (0xF900, 0xFB00), (0x20000, 0x30000)):
        table[lo:hi] = KANJI
    table[[0x3005, 0x3006, 0x3007]] = KANJI
    table[ord("A") : ord("Z") + 1] = LATIN
    table[ord("a") : ord("z") + 1] = LATIN
    table[0xC0:0x250] = LATIN  # accented Latin letters (é, ü, š ...)
    table[ord("0") : ord("9") + 1] = DIGIT
    table[0x3001:0x3005] = JA_PUNCT
    table[0x3008:0x3040] = JA_PUNCT  # 「」『』【】〜 ...
    table[0xFF01:0xFF66] = JA_PUNCT  # full-width forms that survive without NFKC
    for ch in "!\"$%&'()*+,-.:;?@^`~":
        table[ord(ch)] = ASCII_SYMBOL
    # Characters that mostly appear as markup: HTML/XML, roff, wiki and Aozora ruby/annotations.
    for ch in "<>{}[]\\|#=_/《》":
        table[ord(ch)] = MARKUP
    for ch in " \t\n\r\x0b\x0c\u3000\u00a0\u2028\u2029":
        table[ord(ch)] = SPACE
    return table


TABLE = _build_table()

# Sentence punctuation flags: BREAK ends a sentence for length statistics (。!? and line breaks);
# END counts as a sentence end for 「。」 rarity (。!? and closing quotes 」』).
BREAK, END = 1, 2
PUNCT = np.zeros(0x110000, dtype=np.uint8)
for _ch in "。!?！？":
    PUNCT[ord(_ch)] = BREAK | END
PUNCT[ord("\n")] = BREAK
for _ch in "」』":
    PUNCT[ord(_ch)] = END


# One lookup gives both: class id in the low 4 bits, punctuation flags above (see Features.flags).
FLAGS = TABLE | (PUNCT << 4)
PUNCT_SHIFT = 4
CLASS_MASK = 0x0F


def codepoints(text: str) -> np.ndarray:
    """The text's code points as a uint32 array (UTF-32 is a fixed-width, zero-copy view)."""
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def class_counts(codes: np.ndarray) -> np.ndarray:
    """How many characters of each class (indexed by the class ids above)."""
    return np.bincount(TABLE.take(codes), minlength=N_CLASSES)
