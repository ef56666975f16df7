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
_NAV_LINE = re.compile(rf"(?:{_SEP}|\d+|\.\.\.|{_NAV_WORD.pattern})+")
_SHARE_WORD = re.compile(_words(_SHARE_SURE + _SHARE_WEAK))
_SHARE_LINE = re.compile(rf"(?:{_SEP}|\d+|{_SHARE_WORD.pattern})+")
_NAV_SURE_SET, _SHARE_SURE_SET = frozenset(_NAV_SURE), frozenset(_SHARE_SURE)

_HOME = r"(?:ホーム|HOME|Home|TOP|Top|トップ|トップページ|サイトトップ)"
_CRUMB_SEP = re.compile(r"\s*(?:>|»|›|≫)\s*")
_COPYRIGHT = re.compile(
    r"(?i)^(?:copyright\s*(?:©|\(c\)|\d{4})|©|\(c\)\s*\d{4})|all\s+rights\s+reserved"
    r"|無断(?:転載|転用|複製|複写|使用|引用)(?:[・、]無断(?:転載|転用|複製|複写|使用))*(?:を)?"
    r"(?:禁(?:ず|止|じます)|固く禁|お断り|はご遠慮)"
)
_RELATED_HEAD = re.compile(
    r"[\s【■◆●▼▽◇□★☆▶►\[<(「\-*]*(?:"
    r"関連リンク|関連記事|関連する記事|関連ページ|関連情報|関連サイト|関連項目|関連エントリー?|関連コンテンツ"
    r"|関連トピック|関連書籍|関連商品|おすすめ記事|オススメ記事|おすすめの記事|人気記事|人気の記事"
    r"|よく読まれている記事|注目記事|新着記事|最新記事|最近の投稿|最近の記事|最近のコメント|あわせて読みたい"
    r"|合わせて読みたい|こちらもおすすめ|こちらの記事もおすすめ|この記事を読んだ人は(?:こんな記事も|こちらも)読んでいます"
    r"|次に読みたい|カテゴリー?|アーカイブ|タグ|タグクラウド|アクセスランキング|人気ランキング"
    r"|Related (?:Posts|Articles|Links|Entries)|Recent (?:Posts|Entries|Comments)|Archives|Categories|Tags)"
    r"(?:一覧)?[\s】■◆●▲▼\]>)」:!*\-]*"
)
_READ_WORDS = r"(?:続きを読む|続きを見る|続きはこちら|もっと見る|もっと読む|全文を読む|全文表示|記事を読む|詳しくはこちら|詳細はこちら|詳しく見る|Read more|Continue reading)"
_READ_MORE = re.compile(
    rf"(?i)[\s\[(「【<>»→…\.\-]*{_READ_WORDS}[\s\])」】>»→…\.!]*"
    rf"|.{{0,200}}?(?:\.\.\.?|…)\s*[\[(「【<]?{_READ_WORDS}[\])」】>»→\s]*"
)
_DATE_CORE = (
    r"(?:(?:\d{4}|(?:令和|平成|昭和)(?:\d{1,2}|元))\s*年\s*\d{1,2}\s*月\s*\d{1,2}\s*日"
    r"|\d{4}[/.\-]\d{1,2}[/.\-]\d{1,2})"
)
_DATE = re.compile(
    r"(?:(?:投稿|公開|更新|最終更新|掲載|作成|配信|記事公開|記事更新)(?:日|日時)?\s*:?\s*)?"
    rf"{_DATE_CORE}"
    r"(?:\s*\(?(?:[月火水木金土日](?:曜日?)?|Mon|Tue|Wed|Thu|Fri|Sat|Sun)\)?)?"
    r"(?:\s*\d{1,2}:\d{2}(?::\d{2})?)?"
    r"(?:\s*(?:投稿|公開|更新|配信|に投稿|に公開|に更新))?"
    r"|\d{4}\s*年\s*\d{1,2}\s*月\s*\(\d+\)"  # an archive list's entry: 2023年4月 (12)
)


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


def classify(line: str, copyright_words: bool = True, read_words: bool = True) -> str | None:
    """The rule a stripped line is boilerplate under, or None (related-list members need context:
    see clean_lines). Cheap substring tests come before each regular expression: most lines are
    content, and a failed `in` costs a fraction of a failed match. `copyright_words`, `read_words`:
    False when the whole document holds none of those rules' words (clean_lines checks once)."""
    if "。" in line or line[-1] in _SENTENCE_END:  # a sentence: only a copyright notice or a teaser
        if copyright_words and _copyright_hint(line) and _COPYRIGHT.search(line):
            return "copyright"
        if read_words and _read_hint(line) and _READ_MORE.fullmatch(line):
            return "read_more"
        return None
    if len(line) <= 40 and _RELATED_HEAD.fullmatch(line):
        return "related"
    if read_words and _read_hint(line) and _READ_MORE.fullmatch(line):
        return "read_more"
    if copyright_words and _copyright_hint(line) and _COPYRIGHT.search(line):
        return "copyright"
    if line[0] in _DATE_START and _DATE.fullmatch(line):
        return "date"
    if len(line) <= 120:
        if _only_words(line, _SHARE_LINE, _SHARE_WORD, _SHARE_SURE_SET):
            return "share"
        if _only_words(line, _NAV_LINE, _NAV_WORD, _NAV_SURE_SET):
            return "navigation"
    if (">" in line or "»" in line or "›" in line or "≫" in line) and _breadcrumb(line):
        return "breadcrumb"
    return None


def _read_hint(line: str) -> bool:
    # Substring tests (memchr-fast) before the regular expression; ~10× cheaper than a search.
    return (
        "続き" in line
        or "読む" in line
        or "もっと" in line
        or "全文" in line
        or "詳" in line
        or "ead" in line
    )


_SENTENCE_END = frozenset("。」』")  # how prose lines end (dialogue in 」); no boilerplate rule's line does


def _read_doc_hint(text: str) -> bool:
    """Whether a document may hold a read_more line: narrower than _read_hint (読む, 詳 and 続き alone
    are everyday words), as a whole document is searched."""
    return (
        "続きを" in text or "続きは" in text or "もっと" in text or "全文" in text or "を読む" in text
        or "はこちら" in text or "詳しく見る" in text or "ead more" in text or "ontinue reading" in text
    )  # fmt: skip


def _copyright_hint(line: str) -> bool:
    return (
        "©" in line
        or "opyright" in line
        or "ights" in line
        or "無断" in line
        or "(c)" in line
        or "(C)" in line
    )


_DATE_START = frozenset("0123456789投公更最掲作配記令平昭")


def _link_like(line: str, max_chars: int) -> bool:
    """A member of a related-links list: a title, not a sentence."""
    return len(line) <= max_chars and "。" not in line


def clean_lines(text: str, p: dict[str, Any]) -> tuple[str, dict[str, list[int]], list[tuple[int, str, str]]]:
    """Remove boilerplate lines; return (text, {rule: [lines, characters]}, [(line number, rule, line)
    removed]).

    `p`: rules (names from RULES), max_line_chars, block_line_chars, block_max_lines."""
    rules = set(p.get("rules", RULES))
    max_chars = p.get("max_line_chars", 200)
    block_chars, block_max = p.get("block_line_chars", 60), p.get("block_max_lines", 30)
    lines = text.split("\n")
    drop: list[tuple[int, str]] = []
    in_block = 0  # lines still allowed in the related-links list being read (0: none open)
    # Most lines of prose end in 「。」, and only a copyright notice or a teaser can: when the
    # document has neither kind's words, those lines are skipped without a look (the common case).
    copyright_words = _copyright_hint(text)
    read_words = _read_doc_hint(text)
    sentences_may_match = copyright_words or read_words
    for i, raw in enumerate(lines):
        if not raw or (raw[-1] in _SENTENCE_END and not in_block and not sentences_may_match):
            continue
        line = raw.strip()
        if not line:
            continue
        if len(line) > max_chars:
            in_block = 0
            continue
        if in_block and _link_like(line, block_chars) and not classify(line, copyright_words, read_words):
            drop.append((i, "related"))
            in_block -= 1
            continue
        rule = classify(line, copyright_words, read_words)
        in_block = block_max if rule == "related" and "related" in rules else 0
        if rule is not None and rule in rules:
            drop.append((i, rule))
    counts: dict[str, list[int]] = {}
    if not drop:
        return text, counts, []
    removed = []
    for i, rule in drop:
        line = lines[i].strip()
        entry = counts.setdefault(rule, [0, 0])
        entry[0] += 1
        entry[1] += len(line)
        removed.append((i, rule, line))
        lines[i] = None  # type: ignore[call-overload]
    kept = "\n".join(line for line in lines if line is not None)
    # Removing a line between two blank ones leaves a run of them: squeeze as normalisation does.
    kept = re.sub(r"\n{3,}", "\n\n", kept).strip()
    return kept, counts, removed
