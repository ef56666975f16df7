"""Document filters ("rules"): each takes a document's features and its parameters, and returns None
to keep the document or a reason string "rule: evidence" to reject it.

A filter is a plain function registered under its name in `FILTERS`; the configuration lists the
filters to run, in order, with their parameters (see default_config.toml, where each parameter is
documented). They are defined here in that order: cheap filters come first so that most rejections
cost little. The statistics they judge by are in features.py (per character, per line, per
sentence) and repetition.py (repeated lines, paragraphs and n-grams, with their cheap bounds).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import numpy as np

from jalm.corpus import chars

# The filters defined in their own modules register themselves when imported: importing this module
# gives the complete registry.
from jalm.corpus import langid as _langid  # noqa: F401 - the "language" filter
from jalm.corpus import roff as _roff  # noqa: F401 - the "roff" filter
from jalm.corpus.features import _JAPANESE_CHAR, Features, japanese_word_gaps, ratio
from jalm.corpus.registry import FILTERS, Filter, register
from jalm.corpus.repetition import (
    duplicated_ngram_mask,
    duplicated_ngram_share,
    repeated_bound,
    repeated_share,
    top_ngram_share,
)


@register("length")
def length(doc: Features, p: dict[str, Any]) -> str | None:
    """Too short to be a document, or too long to be one (a dump, a log, a concatenation)."""
    if doc.n_chars < p["min_chars"]:
        return f"length: {doc.n_chars} chars < {p['min_chars']}"
    if doc.n_chars > p["max_chars"]:
        return f"length: {doc.n_chars} chars > {p['max_chars']}"
    return None


@register("japanese_share")
def japanese_share(doc: Features, p: dict[str, Any]) -> str | None:
    """Hiragana + katakana + kanji over all non-space characters of the whole document; a document
    below `min` (technical Japanese: commands, options, paths, identifiers, English terms) is judged
    on its prose instead (Features.prose): the lines holding Japanese must cover `min_prose_lines` of
    its characters, and on them Japanese letters must make up `min_in_prose` of the letters, ASCII
    tokens shaped like paths, options, identifiers or numbers not counted. Below `floor`, no look."""
    share = ratio(doc.n_japanese, doc.n_chars)
    if share >= p["min"]:
        return None
    if share < p.get("floor", p["min"]) or "min_prose_lines" not in p:
        return f"japanese_share: {share:.2f} < {p['min']}"
    n_prose, n_ja, n_words = doc.prose
    lines = ratio(n_prose, doc.n_chars)
    if lines < p["min_prose_lines"]:
        return f"japanese_share: {share:.2f} < {p['min']}, and lines with Japanese hold {lines:.2f} of chars < {p['min_prose_lines']}"
    in_prose = ratio(n_ja, n_ja + n_words)
    if in_prose < p["min_in_prose"]:
        return f"japanese_share: {share:.2f} < {p['min']}, and Japanese is {in_prose:.2f} of the letters on its lines < {p['min_in_prose']}"
    return None


@register("char_classes")
def char_classes(doc: Features, p: dict[str, Any]) -> str | None:
    """Mix of scripts among Japanese letters: kana-less text is Chinese (or kanbun); katakana-heavy
    text is product lists and transliterated spam; digit-heavy text is tables, prices and phone lists."""
    c = doc.class_counts
    kana = ratio(c[chars.HIRAGANA] + c[chars.KATAKANA], doc.n_japanese)
    if kana < p["min_kana_share"]:
        return f"char_classes: kana are {kana:.2f} of Japanese letters < {p['min_kana_share']}"
    katakana = ratio(c[chars.KATAKANA], doc.n_japanese)
    if katakana > p["max_katakana_share"]:
        return f"char_classes: katakana are {katakana:.2f} of Japanese letters > {p['max_katakana_share']}"
    digits = ratio(c[chars.DIGIT], doc.n_chars)
    if digits > p["max_digit_share"]:
        return f"char_classes: digits are {digits:.2f} of chars > {p['max_digit_share']}"
    return None


_HTML_TAGS = (
    "a|b|i|u|p|br|hr|em|tt|li|ul|ol|dl|dt|dd|h[1-6]|div|span|font|table|tr|td|th|tbody|thead|img|pre|"
    "code|strong|small|sup|sub|center|script|style|meta|link|head|body|html|title|form|input|iframe|"
    "nav|section|article|header|footer|noscript|blockquote|option|select|button|label"
)
# Markup constructs, not symbols: HTML/XML tags (a known tag name, or any tag with an attribute; not
# <username>, <stdio.h> or <https://...>), comments and declarations, entities; roff requests,
# comments and escapes; wiki brackets; Aozora ruby 《...》 and annotations [#...] (［＃...］ after NFKC).
_MARKUP_CONSTRUCT = re.compile(
    rf"</?(?:{_HTML_TAGS})\b[^<>\n]{{0,200}}>|<[A-Za-z][\w:-]*[ \t][^<>\n]*=[^<>\n]{{0,200}}>|<[!?][^<>\n]{{0,200}}>"
    r"|&(?:[A-Za-z]{2,8}|#\d{2,5});"
    r"""|^\.[A-Za-z]{1,3}(?:[ \t].*)?$|^['.]\\".*$|\\f[BIRP1-4]|\\\(..|\\[-&e]|\\\*\(?\w+"""
    r"|\[\[|\]\]|\{\{|\}\}|'''"
    r"|《[^》\n]{0,50}》|\[#[^\]\n]{0,100}\]",
    re.MULTILINE,
)


@register("markup")
def markup(doc: Features, p: dict[str, Any]) -> str | None:
    """Markup left by HTML, roff, wiki or Aozora source text. Cheap first: the share of markup
    symbols (<>{}[]\\|#=_/《》); a document over `max_share` (or with roff's ".XX" request lines and
    backslashes) is judged on the characters inside
    markup constructs (tags, entities, roff requests and escapes, wiki brackets, ruby and
    annotations) against `max_construct_share`, because the paths (/usr/bin), identifiers
    (O_RDONLY), placeholders (<file>), option syntax ([-a]) and tables (| a | b |) of technical
    prose are symbols, not markup."""
    share = ratio(doc.class_counts[chars.MARKUP], doc.n_chars)
    # roff source has few symbols: its requests are ".XX" lines, its escapes backslashes
    roff = doc.has_line_starting_with(".", first_line=False) and "\\" in doc.text
    if share <= p["max_share"] and not ("max_construct_share" in p and roff):
        return None
    if "max_construct_share" not in p:
        return f"markup: {share:.3f} of chars are markup symbols > {p['max_share']}"
    found = _MARKUP_CONSTRUCT.findall(doc.text)
    inside = sum(len(m) - m.count(" ") - m.count("\t") for m in found)
    construct = ratio(inside, doc.n_chars)
    if construct > p["max_construct_share"]:
        return (
            f"markup: {construct:.3f} of chars are in {len(found)} tags, entities, roff requests, ruby or "
            f"annotations > {p['max_construct_share']} ({share:.3f} are markup symbols)"
        )
    return None


@register("word_list")
def word_list(doc: Features, p: dict[str, Any]) -> str | None:
    """Japanese words separated by spaces: keyword lists, tag clouds, listing spam.

    Japanese prose does not put spaces between words, so spaces with Japanese on both sides,
    per Japanese character, measure how much of the document is a list of words.
    """
    gaps = japanese_word_gaps(doc)
    share = ratio(gaps, doc.n_japanese)
    if share > p["max_gaps_per_ja_char"]:
        return f"word_list: {gaps} spaces between Japanese words ({share:.3f} per Japanese char) > {p['max_gaps_per_ja_char']}"
    return None


@register("sentence_end")
def sentence_end(doc: Features, p: dict[str, Any]) -> str | None:
    """「。」 rarity: listings, keyword spam and navigation have few sentence ends per character."""
    ends = doc.n_sentence_ends
    per_end = doc.n_chars / max(ends, 1)
    if per_end > p["max_chars_per_end"] and p.get("skip_tables", False) and "|" in doc.text:
        # Table rows (| key | action |, as the HTML extractor writes tables) hold no sentences.
        rows = [line for line in doc.lines if line.startswith("|") and line.endswith("|")]
        in_rows = sum(len(line) - line.count(" ") for line in rows)
        ends -= sum(
            line.count("。") + line.count("」") + line.count("』") + line.count("!") + line.count("?")
            for line in rows
        )
        per_end = (doc.n_chars - in_rows) / max(ends, 1)
        if per_end > p["max_chars_per_end"]:
            return f"sentence_end: {ends} sentence ends in {doc.n_chars - in_rows} chars outside tables (1 per {per_end:.0f} > {p['max_chars_per_end']})"
    if per_end > p["max_chars_per_end"]:
        return f"sentence_end: {ends} sentence ends in {doc.n_chars} chars (1 per {per_end:.0f} > {p['max_chars_per_end']})"
    return None


@register("sentences")
def sentences(doc: Features, p: dict[str, Any]) -> str | None:
    """Sentence statistics (after Swallow): mean length, share of text in overlong sentences, and
    sentences trailing off in ・ or ... (after NFKC, … is ...)."""
    lengths = doc.sentence_lengths
    if len(lengths) == 0:
        return "sentences: no sentences"
    mean = doc.n_chars / len(lengths)  # the lengths add up to the non-space characters
    if mean < p["min_mean_length"]:
        return f"sentences: mean sentence length {mean:.1f} chars < {p['min_mean_length']}"
    if mean > p["max_mean_length"]:
        return f"sentences: mean sentence length {mean:.1f} chars > {p['max_mean_length']}"
    long_share = ratio(int(lengths[lengths > p["long_sentence"]].sum()), doc.n_chars)
    if long_share > p["max_long_share"]:
        return f"sentences: {long_share:.2f} of text in sentences over {p['long_sentence']} chars > {p['max_long_share']}"
    trailing = doc.trailing_off
    share = ratio(trailing, len(lengths))
    if trailing >= 3 and share > p["max_ellipsis_share"]:
        return f"sentences: {trailing} of {len(lengths)} sentences end in ・ or ... ({share:.2f} > {p['max_ellipsis_share']})"
    return None


@register("line_repetition")
def line_repetition(doc: Features, p: dict[str, Any]) -> str | None:
    """Share of characters in lines that occur more than once (Gopher's duplicate-line rule)."""
    return _repeated_pieces(doc, "lines", p["max_dup_line_char_share"], "line_repetition")


@register("paragraph_repetition")
def paragraph_repetition(doc: Features, p: dict[str, Any]) -> str | None:
    """Share of characters in paragraphs (blank-line separated) that occur more than once."""
    return _repeated_pieces(doc, "paragraphs", p["max_dup_char_share"], "paragraph_repetition")


def _repeated_pieces(doc: Features, pieces: str, limit: float, rule: str) -> str | None:
    """The share of characters in repeated `pieces` ("lines" or "paragraphs") against `limit`: a
    document whose cheap bound (Features.repetition_bounds) clears it is not split at all."""
    bounds = doc.repetition_bounds
    if bounds is not None and bounds[0 if pieces == "lines" else 1] <= limit:
        return None
    share = repeated_share(doc.lines if pieces == "lines" else doc.paragraphs)
    if share > limit:
        return f"{rule}: {share:.2f} of chars in repeated {pieces} > {limit}"
    return None


@register("char_repetition")
def char_repetition(doc: Features, p: dict[str, Any]) -> str | None:
    """Gopher's n-gram repetition limits applied to characters (white space ignored).

    `top`: {n: max share of characters covered by the most frequent n-gram};
    `dup`: {n: max share of characters covered by n-grams that occur more than once}.
    """
    total = doc.n_dense
    if total == 0:
        return None
    # Upper bounds first; only a document a bound cannot clear is measured exactly (as before).
    for n, limit in p.get("top", {}).items():
        if int(n) >= 2 and doc.max_bigram_count * int(n) / total <= limit:
            continue
        share = top_ngram_share(doc.ngram_hashes(int(n)), int(n), total, limit)
        if share > limit:
            return f"char_repetition: most frequent {n}-gram covers {share:.2f} of chars > {limit}"
    for n, limit in p.get("dup", {}).items():
        hashes = doc.ngram_hashes(int(n))
        if repeated_bound(hashes, int(n), total, limit) <= limit:
            continue
        covered = duplicated_ngram_mask(hashes, int(n), total)
        share = 0.0 if covered is None else np.count_nonzero(covered) / total
        if share > limit and p.get("ascii_free_retry", False):
            # Technical prose names the same identifiers, options and paths again and again
            # (pthread_attr_getinheritsched, PTHREAD_EXPLICIT_SCHED): judge the text without them.
            rest = doc.without_ascii
            retry = duplicated_ngram_share(rest.ngram_hashes(int(n)), int(n), rest.n_dense)
            if retry <= limit:
                continue
            if p.get("named_entries_retry", False):
                # ... and describes many items in the same words, each line or sentence naming its
                # own (「FILE が i386 EFI ファイルであるかどうかをチェックします。」 for each
                # architecture): what repeats outside such entries is judged.
                outside = np.count_nonzero(covered & ~doc.named_entries) / total
                if outside <= limit:
                    continue
                return (
                    f"char_repetition: repeated {n}-grams cover {share:.2f} of chars ({retry:.2f} without ASCII, "
                    f"{outside:.2f} outside entries naming their identifiers) > {limit}"
                )
            return f"char_repetition: repeated {n}-grams cover {share:.2f} of chars ({retry:.2f} without ASCII) > {limit}"
        if share > limit:
            return f"char_repetition: repeated {n}-grams cover {share:.2f} of chars > {limit}"
    return None


@register("keywords")
def keywords(doc: Features, p: dict[str, Any]) -> str | None:
    """NG-word, advertising and header/footer lists, every occurrence found (as Aho-Corasick does)
    and COUNTED: a list fires when its hits reach `min_count` and `min_per_1000_chars` (per 1000
    non-space chars). A list with `max_line_chars` counts only hits on lines that short: header,
    footer and menu words (ログイン, アーカイブ) stand alone there, and are ordinary words in prose."""
    from jalm.corpus.keywords import matcher_for_lists

    lists = p["lists"]
    matcher = matcher_for_lists(lists)
    flags = doc.flags if doc.table is matcher.table else None
    hits: dict[str, Counter[str]] = {}
    short = {name: entry["max_line_chars"] for name, entry in lists.items() if "max_line_chars" in entry}
    for name, word in matcher.matches(doc.text, doc.codes, flags, short):
        hits.setdefault(name, Counter())[word] += 1
    for name, entry in lists.items():
        counter = hits.get(name) or Counter()
        total = sum(counter.values())
        per_1000 = 1000 * ratio(total, doc.n_chars)
        if total >= entry["min_count"] and per_1000 >= entry["min_per_1000_chars"]:
            top = ", ".join(f"{word}×{n}" for word, n in counter.most_common(3))
            return f"keywords: {name} list hit {total} times ({top}), {per_1000:.1f} per 1000 chars ≥ {entry['min_per_1000_chars']}"
    return None


_CODE_LINE = re.compile(
    r"""^\s*(?:
        (?:def|class|import|from|return|if|elif|else|for|while|try|except|with|function|var|let|const|
           public|private|static|void|int|char|\#include|\#define|package|func|fn|use|echo|print|printf)\b.*
      | .*[;{}]\s*$
      | [}\])]+[;,]?\s*$
      | .*(?:==|!=|=>|->|::|\+=|&&|\|\|).*
      | [\w.\[\]'"]+\s*=\s*\S.*
      | //.* | /\*.* | \*/.*
    )$""",
    re.VERBOSE,
)


@register("code")
def code(doc: Features, p: dict[str, Any]) -> str | None:
    """Source code: share of lines that look like code (keywords, ; { } at the end, operators)."""
    c = doc.class_counts
    if ratio(c[chars.LATIN] + c[chars.ASCII_SYMBOL] + c[chars.MARKUP], doc.n_chars) < p["min_ascii_share"]:
        return None  # too little ASCII to be code; saves the per-line scan on ordinary Japanese text
    lines = doc.lines
    is_code = [bool(_CODE_LINE.match(line)) for line in lines]
    n_code = sum(is_code)
    share = ratio(n_code, len(lines))
    if n_code >= p["min_lines"] and share > p["max_line_share"]:
        if "min_prose_sentences" in p:
            # A manual with an example program or a synopsis is documentation, not code: its
            # Japanese prose (the other lines holding Japanese) has sentences and covers a share of it.
            prose = [line for line, code in zip(lines, is_code) if not code and _JAPANESE_CHAR.search(line)]
            sentences = sum(line.count("。") for line in prose)
            covered = ratio(sum(len(line) - line.count(" ") for line in prose), doc.n_chars)
            if sentences >= p["min_prose_sentences"] and covered >= p["min_prose_share"]:
                return None
        return f"code: {n_code} of {len(lines)} lines look like source code ({share:.2f} > {p['max_line_share']})"
    return None


_BBS_MARK = re.compile(
    r">>\d+|ID:[\w+/.]{6,}|名無し(?:さん)?|\d{4}/\d{1,2}/\d{1,2}\s*\(.\)\s*\d{1,2}:\d{2}|^\d{1,4}\s*[:：]\s*\S|"
    r"投稿者[:：]|返信する|^\s*>\s*\S",
    re.MULTILINE,
)


def _has_bbs_hint(doc: Features) -> bool:
    """Whether the text holds one of >>, ID:, 名無し, 投稿, 返信 or a line starting with ">" (the same as
    `any(hint in doc.text for hint in (...))`). A search for one character is ~10× faster
    than for a string, so a rare character of each hint is looked for first, after what the class
    counts rule out (no markup character means no ">", no Latin letter no "ID:")."""
    text, counts = doc.text, doc.class_counts
    return bool(
        (counts[chars.MARKUP] and ">" in text and (">>" in text or "\n>" in text))
        or (counts[chars.LATIN] and ":" in text and "ID:" in text)
        or ("無" in text and "名無し" in text)
        or ("稿" in text and "投稿" in text)
        or ("返" in text and "返信" in text)
    )


@register("bbs")
def bbs(doc: Features, p: dict[str, Any]) -> str | None:
    """Bulletin-board threads: reply anchors (>>12), poster IDs, 名無しさん, post headers with dates,
    counted per line (HojiChar counted every hyphen, which rejects clean technical pages)."""
    if not _has_bbs_hint(doc):
        return None  # every thread format we know has at least one of these
    marks = len(_BBS_MARK.findall(doc.text))
    per_line = ratio(marks, len(doc.lines))
    if marks >= p["min_marks"] and per_line > p["max_marks_per_line"]:
        return f"bbs: {marks} thread markers (>>N, ID:, 名無し, post headers) in {len(doc.lines)} lines ({per_line:.2f} > {p['max_marks_per_line']})"
    return None


# ASCII-only local parts: with \w, every run of Japanese characters would be tried as one (quadratic).
_URL = re.compile(
    r"https?://[^\s<>\"'「」]+|www\.[^\s<>\"'「」]+|[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+\.[A-Za-z0-9.-]+"
)


@register("url_email")
def url_email(doc: Features, p: dict[str, Any]) -> str | None:
    """Link farms and contact lists: characters inside URLs and e-mail addresses."""
    text, counts = doc.text, doc.class_counts
    # The scans the class counts rule out are skipped: no Latin letter, no "http"; no symbol, no "@".
    if not (counts[chars.LATIN] and ("http" in text or "www." in text)) and not (
        counts[chars.ASCII_SYMBOL] and "@" in text
    ):
        return None
    found = _URL.findall(text)
    if len(found) < p["min_count"]:
        return None
    share = ratio(sum(len(u) for u in found), doc.n_chars)
    if share > p["max_char_share"]:
        return f"url_email: {len(found)} URLs/e-mail addresses cover {share:.2f} of chars > {p['max_char_share']}"
    return None


__all__ = ["FILTERS", "Filter", "register"]
