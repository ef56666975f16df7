"""Line-level cleaning inside kept documents: boilerplate lines removed, content lines kept.

A web page that passes the document filters often still carries its site's furniture: a breadcrumb
(`ホーム > カテゴリ > 記事`), share buttons (`ツイート シェア はてブ LINEで送る`), a copyright line, a
関連記事 list, 「続きを読む」 and the post date. Each rule below matches a WHOLE stripped line (never a
part of one), and only lines of at most `max_line_chars` characters, so a sentence that mentions
関連記事, a date or © inside prose is never touched:

- navigation: a line made only of navigation words (前へ 次へ トップへ戻る ページの先頭へ, ホーム
  サイトマップ お問い合わせ ログイン ...), page numbers and separators; a single ambiguous word (ホーム,
  メニュー, 検索: also section titles in manuals) needs a second navigation word on its line;
- breadcrumb: three or more short segments joined by > » › ≫ (two when the first is ホーム/TOP/HOME);
  not a line with <, ->, => or >> (code, shell redirection, BBS anchors);
- share: a line made only of share-button words (ツイート シェア はてブ LINEで送る Pocket いいね! ...)
  with their counts; Facebook/Twitter/LINE alone need a second share word (they are also topics);
- copyright: starts with © or with Copyright / (c) and a year or ©, or holds "All Rights Reserved" or
  無断転載禁止 and the like ("Copyright law ..." and "(c) 3番目の項目" stay);
- related: a 関連記事 / 関連リンク / おすすめ記事 / 人気記事 / 最近の投稿 / カテゴリー / アーカイブ ...
  heading, and the link-like lines under it (at most `block_line_chars` characters, no 「。」), up to
  `block_max_lines`; the first line that is not link-like ends the list;
- read_more: 「続きを読む」, 「もっと見る」, 「詳しくはこちら」, "Read more" alone, or a teaser ending in
  「...続きを読む」;
- date: a date alone, with at most a label (投稿日:, 更新日 ...), weekday and time:
  2023年4月1日(土), 2023/04/01 12:34, 令和5年4月1日, and 2023年4月(12) of archive lists.

The text is normalised (NFKC) before this runs, so full-width forms need no rules of their own.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

RULES = ("navigation", "breadcrumb", "share", "copyright", "related", "read_more", "date")

_SEP = r"[\s|/・,、:«»‹›←→↑↓▲▼◀▶△▽\[\]()「」【】]"

_NAV_SURE = (
    "前へ 次へ 前のページ 次のページ 前の記事 次の記事 前の投稿 次の投稿 前のエントリー 次のエントリー "
    "トップへ戻る TOPへ戻る トップに戻る TOPに戻る ページトップへ ページのトップへ ページの先頭へ "
    "ページの先頭へ戻る ページの先頭に戻る このページの先頭へ このページのトップへ 先頭へ戻る 一覧へ戻る "
    "一覧に戻る 記事一覧へ 記事一覧に戻る ホームへ戻る ホームに戻る PAGE TOP PAGETOP"
).split()
_NAV_WEAK = (
    "ホーム HOME Home TOP Top トップ トップページ サイトマップ お問い合わせ お問合せ 問い合わせ "
    "プライバシーポリシー 個人情報保護方針 利用規約 会社概要 運営会社 運営者情報 ログイン ログアウト "
    "新規登録 会員登録 メニュー MENU Menu 検索 サイト内検索 閉じる 戻る 上へ 記事一覧 一覧 "
    "Prev Previous Next Back Search Login Contact Sitemap"
).split()
_SHARE_SURE = (
    "ツイート ツイートする シェア シェアする はてブ はてなブックマーク はてなブックマークに追加 B! "
    "LINEで送る LINEで共有 Pocket いいね! いいね Tweet Share Pin it Pinterest メールで送る "
    "この記事をシェア この記事をシェアする 記事をシェア 記事をシェアする SNSでシェア URLをコピー "
    "リンクをコピー Facebookでシェア Xでシェア Twitterでシェア Feedly feedly"
).split()
_SHARE_WEAK = (
    "Facebook Twitter X LINE mixi Instagram Threads Bluesky note RSS メール コピー フォロー 送る".split()
)


def _words(words: list[str]) -> str:
    # Longest first, so that 「ページの先頭へ戻る」 is not read as 「ページの先頭へ」 + 「戻る」.
    return "|".join(re.escape(w) for w in sorted(set(words), key=len, reverse=True))


_NAV_WORD = re.compile(_words(_NAV_SURE + _NAV_WEAK))
_NAV_LINE = re.compile(rf"(?:{_SEP}|[0-9]+|\.\.\.|{_NAV_WORD.pattern})+")
_SHARE_WORD = re.compile(_words(_SHARE_SURE + _SHARE_WEAK))
_SHARE_LINE = re.compile(rf"(?:{_SEP}|[0-9]+|{_SHARE_WORD.pattern})+")
_NAV_SURE_SET, _SHARE_SURE_SET = frozenset(_NAV_SURE), frozenset(_SHARE_SURE)

_HOME = r"(?:ホーム|HOME|Home|TOP|Top|トップ|トップページ|サイトトップ)"
_CRUMB_SEP = re.compile(r"\s*(?:>|»|›|≫)\s*")
_COPYRIGHT = re.compile(
    r"(?i)^(?:copyright\s*(?:©|\(c\)|\d{4})|©|\(c\)\s*\d{4})|all\s+rights\s+reserved"
    r"|無断(?:転載|転用|複製|複写|使用|引用)(?:[・、]無断(?:転載|転用|複製|複写|使用))*(?:を)?"
    r"(?:禁(?:ず|止|じます)|固く禁|お断り|はご遠慮)"
)
_RELATED_WORDS = (
    "関連リンク 関連記事 関連する記事 関連ページ 関連情報 関連サイト 関連項目 関連エントリ 関連エントリー "
    "関連コンテンツ 関連トピック 関連書籍 関連商品 おすすめ記事 オススメ記事 おすすめの記事 人気記事 人気の記事 "
    "よく読まれている記事 注目記事 新着記事 最新記事 最近の投稿 最近の記事 最近のコメント あわせて読みたい "
    "合わせて読みたい こちらもおすすめ こちらの記事もおすすめ この記事を読んだ人はこんな記事も読んでいます "
    "この記事を読んだ人はこちらも読んでいます 次に読みたい カテゴリ カテゴリー アーカイブ タグ タグクラウド "
    "アクセスランキング 人気ランキング Archives Categories Tags"
).split() + [
    f"{a} {b}"
    for a, bs in (("Related", "Posts Articles Links Entries"), ("Recent", "Posts Entries Comments"))
    for b in bs.split()
]
_RELATED_OPEN, _RELATED_CLOSE = r"\s【■◆●▼▽◇□★☆▶►\[<(「\-*", r"\s】■◆●▲▼\]>)」:!*\-"
_RELATED_HEAD = re.compile(rf"[{_RELATED_OPEN}]*(?:{_words(_RELATED_WORDS)})(?:一覧)?[{_RELATED_CLOSE}]*")
_READ_WORDS = r"(?:続きを読む|続きを見る|続きはこちら|もっと見る|もっと読む|全文を読む|全文表示|記事を読む|詳しくはこちら|詳細はこちら|詳しく見る|Read more|Continue reading)"
_READ_MORE = re.compile(
    rf"(?i)[\s\[(「【<>»→…\.\-]*{_READ_WORDS}[\s\])」】>»→…\.!]*"
    rf"|.{{0,200}}?(?:\.\.\.?|…)\s*[\[(「【<]?{_READ_WORDS}[\])」】>»→\s]*"
)
_DATE_CORE = (
    r"(?:(?:[0-9]{4}|(?:令和|平成|昭和)(?:[0-9]{1,2}|元))\s*年\s*[0-9]{1,2}\s*月\s*[0-9]{1,2}\s*日"
    r"|[0-9]{4}[/.\-][0-9]{1,2}[/.\-][0-9]{1,2})"
)
_DATE = re.compile(
    r"(?:(?:投稿|公開|更新|最終更新|掲載|作成|配信|記事公開|記事更新)(?:日|日時)?\s*:?\s*)?"
    rf"{_DATE_CORE}"
    r"(?:\s*\(?(?:[月火水木金土日](?:曜日?)?|Mon|Tue|Wed|Thu|Fri|Sat|Sun)\)?)?"
    r"(?:\s*[0-9]{1,2}:[0-9]{2}(?::[0-9]{2})?)?"
    r"(?:\s*(?:投稿|公開|更新|配信|に投稿|に公開|に更新))?"
    r"|[0-9]{4}\s*年\s*[0-9]{1,2}\s*月\s*\([0-9]+\)"  # an archive list's entry: 2023年4月 (12)
)


# Which lines can match at all, for every line of a document at once (clean_lines): navigation,
# share, related-list headings and dates are lines made ONLY of these characters (their words,
# separators, digits, the dates' kanji, white space); a breadcrumb needs one of _CRUMB_CHARS,
# copyright notices and 続きを読む teasers one of the substrings classify() tests first
# (_COPYRIGHT_HINTS, _READ_HINTS). A line with some other character and none of those
# is content, whatever the rules say; tests/test_clean_refine.py checks this on real and generated
# lines, and that the result equals looking at every line.
_WHITESPACE = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000" + "".join(
    map(chr, range(0x2000, 0x200B))
)  # what `\s` matches in a str pattern
_DATE_CHARS = (
    "0123456789年月日令和平成昭元/.-:()投稿公開更新最終掲載作成配信記事時に火水木金土曜MonTueWedThuFriSatSun"
)
_RULE_CHARS = frozenset(
    "".join(_NAV_SURE + _NAV_WEAK + _SHARE_SURE + _SHARE_WEAK + _RELATED_WORDS)
    + "一覧0123456789.|/・,、:«»‹›←→↑↓▲▼◀▶△▽[]()「」【】"  # + _SEP, numbers, ...
    + "【■◆●▼▽◇□★☆▶►[<(「-*】■◆●▲▼]>)」:!*-"  # _RELATED_OPEN, _RELATED_CLOSE
    + _DATE_CHARS
    + _WHITESPACE
)
_CRUMB_CHARS = ">»›≫"  # what _breadcrumb() needs
_COPYRIGHT_HINTS = ("©", "opyright", "ights", "無断", "(c)", "(C)")  # one is in every _COPYRIGHT match
_READ_HINTS = ("続き", "読む", "もっと", "全文", "詳", "ead")  # one is in every _READ_WORDS
_HINTS = _COPYRIGHT_HINTS + _READ_HINTS
# By code point, bits: OUTSIDE (not in _RULE_CHARS), ALONE (a breadcrumb separator or a hint of
# one character), FIRST and SECOND (the first two characters of a longer hint).
_OUTSIDE, _ALONE, _FIRST, _SECOND = 1, 2, 4, 8
_LINE_CHARS = np.full(0x110000, _OUTSIDE, dtype=np.uint8)
_LINE_CHARS[[ord(c) for c in _RULE_CHARS]] = 0
_LINE_CHARS[[ord(c) for c in _CRUMB_CHARS]] |= _ALONE
for _hint in _HINTS:
    if len(_hint) == 1:
        _LINE_CHARS[ord(_hint)] |= _ALONE
    else:
        _LINE_CHARS[ord(_hint[0])] |= _FIRST
        _LINE_CHARS[ord(_hint[1])] |= _SECOND
_HINTS_BY_PAIR: dict[str, tuple[str, ...]] = {}  # the longer hints by their first two characters
for _hint in _HINTS:
    if len(_hint) > 1:
        _HINTS_BY_PAIR[_hint[:2]] = (*_HINTS_BY_PAIR.get(_hint[:2], ()), _hint)


def _only_words(line: str, line_re: re.Pattern[str], word_re: re.Pattern[str], sure: frozenset[str]) -> bool:
    """Whether `line` is made only of the words of `word_re` (with numbers and separators) and holds a
    `sure` word or at least two words."""
    if not line_re.fullmatch(line):
        return False
    found = word_re.findall(line)
    return len(found) >= 2 or (len(found) == 1 and found[0] in sure)


def _breadcrumb(line: str) -> bool:
    if "<" in line or "->" in line or "=>" in line or ">>" in line or "。" in line:
        return False
    parts = _CRUMB_SEP.split(line)
    if len(parts) < 2 or not all(0 < len(part) <= 40 for part in parts):
        return False
    return len(parts) >= 3 or re.fullmatch(_HOME, parts[0]) is not None


def classify(line: str) -> str | None:
    """The rule a stripped line is boilerplate under, or None (related-list members need context:
    see clean_lines). Cheap substring tests come before each regular expression: most lines are
    content, and a failed `in` costs a fraction of a failed match."""
    if "。" in line or line[-1] in _SENTENCE_END:  # a sentence: only a copyright notice or a teaser
        if _copyright_hint(line) and _COPYRIGHT.search(line):
            return "copyright"
        if _read_hint(line) and _READ_MORE.fullmatch(line):
            return "read_more"
        return None
    if len(line) <= 40 and _RELATED_HEAD.fullmatch(line):
        return "related"
    if _read_hint(line) and _READ_MORE.fullmatch(line):
        return "read_more"
    if _copyright_hint(line) and _COPYRIGHT.search(line):
        return "copyright"
    if line[0] in _DATE_START and _DATE.fullmatch(line):
        return "date"
    if len(line) <= 120:
        if _only_words(line, _SHARE_LINE, _SHARE_WORD, _SHARE_SURE_SET):
            return "share"
        if _only_words(line, _NAV_LINE, _NAV_WORD, _NAV_SURE_SET):
            return "navigation"
    if any(c in line for c in _CRUMB_CHARS) and _breadcrumb(line):
        return "breadcrumb"
    return None


def _read_hint(line: str) -> bool:
    # Substring tests (memchr-fast) before the regular expression; ~10× cheaper than a search.
    return any(hint in line for hint in _READ_HINTS)


_SENTENCE_END = frozenset("。」』")  # how prose lines end (dialogue in 」); no boilerplate rule's line does


def _copyright_hint(line: str) -> bool:
    return any(hint in line for hint in _COPYRIGHT_HINTS)


_DATE_START = frozenset("0123456789投公更最掲作配記令平昭")


def _link_like(line: str, max_chars: int) -> bool:
    """A member of a related-links list: a title, not a sentence."""
    return len(line) <= max_chars and "。" not in line


def clean_lines(
    text: str, p: dict[str, Any], codes: np.ndarray | None = None
) -> tuple[str, dict[str, list[int]], list[tuple[int, str, str]]]:
    """Remove boilerplate lines; return (text, {rule: [lines, characters]}, [(line number, rule, line)
    removed]).

    `p`: rules (names from RULES), max_line_chars, block_line_chars, block_max_lines. `codes`: the
    text's code points if the caller has them (Features.codes)."""
    rules = set(p.get("rules", RULES))
    max_chars = p.get("max_line_chars", 200)
    block_chars, block_max = p.get("block_line_chars", 60), p.get("block_max_lines", 30)
    if codes is None:
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    newlines = np.flatnonzero(codes == 10)
    starts = [0, *(newlines + 1).tolist()]  # line i is text[starts[i]:ends[i]]
    ends = [*newlines.tolist(), len(text)]
    drop: list[tuple[int, str, str]] = []

    def judge(i: int, in_block: int) -> int:
        """Look at line i (the related list being read allows `in_block` more lines); return what
        it allows after this line."""
        line = text[starts[i] : ends[i]].strip()
        if not line:
            return in_block
        if len(line) > max_chars:
            return 0
        if in_block and _link_like(line, block_chars) and not classify(line):
            drop.append((i, "related", line))
            return in_block - 1
        rule = classify(line)
        if rule is not None and rule in rules:
            drop.append((i, rule, line))
        return block_max if rule == "related" and "related" in rules else 0

    # Only candidate lines can start a removal; a related list then is read line by line.
    done = 0  # lines before this one have been looked at (or cannot match)
    for i in _candidate_lines(text, codes, newlines):
        if i < done:
            continue
        in_block, done = judge(i, 0), i + 1
        while in_block and done < len(starts):
            in_block, done = judge(done, in_block), done + 1
    counts: dict[str, list[int]] = {}
    if not drop:
        return text, counts, []
    pieces, at = [], 0
    for i, rule, line in drop:
        entry = counts.setdefault(rule, [0, 0])
        entry[0] += 1
        entry[1] += len(line)
        pieces.append(text[at : starts[i]])
        at = ends[i] + 1  # the line and its line break
    pieces.append(text[at:])
    # Removing a line between two blank ones leaves a run of them: squeeze as normalisation does.
    kept = re.sub(r"\n{3,}", "\n\n", "".join(pieces)).strip()
    return kept, counts, drop


def _candidate_lines(text: str, codes: np.ndarray, newlines: np.ndarray) -> list[int]:
    """Indices of the lines classify() may match (see _RULE_CHARS): those made only of the
    charset-bound rules' characters, and those holding a breadcrumb separator or a copyright or
    read_more hint. Array operations over the code points (one table lookup): looking at every
    line from Python, or searching the text for each hint, cost more than all the filters."""
    if len(codes) == 0:
        return []
    kinds = _LINE_CHARS.take(codes)
    starts = np.empty(len(newlines) + 1, dtype=np.int64)
    starts[0] = 0
    starts[1:] = newlines + 1
    lengths = np.empty(len(starts), dtype=np.int64)
    lengths[:-1] = newlines - starts[:-1]
    lengths[-1] = len(codes) - starts[-1]
    # Characters outside _RULE_CHARS per line (reduceat wants starts inside the array; a last
    # empty line's start is clamped, and empty lines are left out by their length).
    others = np.add.reduceat(kinds & _OUTSIDE, np.minimum(starts, len(codes) - 1), dtype=np.int32)
    candidates = np.flatnonzero((others == 0) & (lengths > 0)).tolist()
    hits = np.flatnonzero((kinds & _ALONE) != 0).tolist()
    for at in np.flatnonzero((kinds[:-1] & (kinds[1:] >> 1) & _FIRST) != 0).tolist():
        hints = _HINTS_BY_PAIR.get(text[at : at + 2])
        if hints and text.startswith(hints, at):
            hits.append(at)
    if hits:
        return sorted(set(candidates).union(np.searchsorted(newlines, hits).tolist()))
    return candidates
