"""Synthetic web noise for the filtering experiment, generated deterministically from a seed.

The bundled raw web pages (data/noisy) are only a dozen documents, too few to make a corpus noisy,
so the experiment adds generated noise of the kinds a web crawl is full of. Every generated record is
labelled `source: "synthetic:<kind>"` so the report can say what the cleaner removed of each kind:

- markup       HTML pages: navigation, menus, scripts and styles around a short real paragraph
- boilerplate  cookie notices, footers, login prompts, share buttons, tag clouds
- code         JavaScript, CSS, Python and SQL snippets
- english      English prose from templates
- spam         shop listings and keyword stuffing (prices, 送料無料, brand lists)
- duplicate    exact copies of real documents and of generated spam pages, several times each

Real paragraphs are borrowed from the clean documents so the markup looks like a page around an article.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

# Share of the noise characters per kind (the bundled raw web pages come on top).
KIND_WEIGHTS = {
    "markup": 0.25,
    "boilerplate": 0.1,
    "code": 0.15,
    "english": 0.15,
    "spam": 0.2,
    "duplicate": 0.15,
}

_NAV = [
    "ホーム",
    "ニュース",
    "特集",
    "ランキング",
    "カテゴリー",
    "お知らせ",
    "会社概要",
    "採用情報",
    "ヘルプ",
    "お問い合わせ",
    "サイトマップ",
    "ログイン",
    "新規登録",
    "マイページ",
    "カート",
    "よくある質問",
]
_TAGS = [
    "旅行",
    "グルメ",
    "東京",
    "キャンペーン",
    "セール",
    "新商品",
    "レビュー",
    "口コミ",
    "おすすめ",
    "比較",
    "まとめ",
    "人気",
    "ランキング",
    "無料",
    "限定",
    "話題",
    "最新",
    "便利",
    "節約",
    "通販",
]
_ITEMS = [
    "バッグ",
    "財布",
    "腕時計",
    "スニーカー",
    "サプリメント",
    "化粧水",
    "イヤホン",
    "スマホケース",
    "ワンピース",
    "コート",
    "美容液",
    "掃除機",
    "炊飯器",
    "ゲーミングチェア",
    "モバイルバッテリー",
]
_BRANDS = ["ALPHA", "ブランドX", "LUXE", "ネオスタイル", "PRIME", "さくら堂", "TOKYO LAB", "ミライ", "ZENITH"]
_SPAM_WORDS = [
    "激安",
    "送料無料",
    "最安値",
    "人気",
    "即日発送",
    "正規品",
    "大特価",
    "限定",
    "ポイント10倍",
    "訳あり",
    "在庫処分",
    "新品",
    "公式",
    "セール",
    "半額",
    "今だけ",
    "通販",
    "ランキング1位",
]
_BOILERPLATE = [
    "当サイトではクッキーを使用しています。サイトを閲覧することでクッキーの使用に同意したものとみなされます。",
    "Copyright © {year} {site} All Rights Reserved.",
    "このページの先頭へ",
    "ページトップへ戻る",
    "プライバシーポリシー | 利用規約 | お問い合わせ | サイトマップ",
    "ログイン | 新規会員登録 | パスワードを忘れた方",
    "この記事をシェアする Twitter Facebook LINE はてなブックマーク",
    "関連記事",
    "人気の記事",
    "カテゴリー一覧",
    "※掲載情報は記事公開時点のものです。",
    "無断転載を禁じます。",
    "広告",
    "PR",
    "スポンサーリンク",
    "最終更新日：{year}年{month}月{day}日",
    "タグ：{tags}",
    "前の記事 | 次の記事",
    "コメントを書く",
    "メールマガジン登録",
]
_EN_SUBJECTS = [
    "The product",
    "Our team",
    "This page",
    "The new update",
    "Every customer",
    "The service",
    "The company",
    "This article",
    "The website",
    "Your account",
]
_EN_VERBS = ["provides", "includes", "supports", "offers", "requires", "describes", "improves", "delivers"]
_EN_OBJECTS = [
    "a simple way to manage your orders",
    "free shipping on all items",
    "the latest security features",
    "a detailed overview of the market",
    "fast and reliable delivery",
    "new tools for small businesses",
    "access to exclusive content",
    "an easy setup process",
    "support in several languages",
]
_EN_TAILS = [
    "for a limited time.",
    "at no extra cost.",
    "starting next month.",
    "in most regions.",
    "according to the latest report.",
    "for registered users.",
    "as described below.",
    ".",
]
_IDENTS = [
    "data",
    "item",
    "user",
    "config",
    "result",
    "value",
    "list",
    "index",
    "count",
    "handler",
    "node",
    "cache",
]


def _pick(rng: random.Random, items: Sequence[str], k: int) -> list[str]:
    return [rng.choice(items) for _ in range(k)]


def _paragraph(rng: random.Random, texts: Sequence[str], chars: int = 200) -> str:
    text = rng.choice(texts)
    start = rng.randrange(max(1, len(text) - chars))
    return text[start : start + chars]


def markup(rng: random.Random, texts: Sequence[str]) -> str:
    nav = "\n".join(
        f'      <li class="nav-item"><a href="/{i}">{w}</a></li>' for i, w in enumerate(_pick(rng, _NAV, 8))
    )
    tags = " ".join(f'<a class="tag" href="/tag/{t}">{t}</a>' for t in _pick(rng, _TAGS, 6))
    return (
        '<!DOCTYPE html>\n<html lang="ja">\n<head>\n  <meta charset="utf-8">\n'
        f"  <title>{rng.choice(_TAGS)}｜{rng.choice(_BRANDS)}公式サイト</title>\n"
        '  <link rel="stylesheet" href="/css/style.css">\n'
        "  <script>window.dataLayer=window.dataLayer||[];function gtag(){dataLayer.push(arguments);}"
        f"gtag('js',new Date());gtag('config','UA-{rng.randrange(10**7, 10**8)}-1');</script>\n</head>\n<body>\n"
        f'  <header class="site-header">\n    <ul class="nav">\n{nav}\n    </ul>\n  </header>\n'
        f'  <main>\n    <div class="breadcrumb"><a href="/">ホーム</a> &gt; {rng.choice(_TAGS)}</div>\n'
        f"    <article><p>{_paragraph(rng, texts, rng.randrange(80, 300))}</p></article>\n"
        f'    <div class="tags">{tags}</div>\n  </main>\n'
        f"  <footer><p>&copy; {rng.randrange(2005, 2024)} {rng.choice(_BRANDS)} Inc.</p></footer>\n</body>\n</html>"
    )


def boilerplate(rng: random.Random, texts: Sequence[str]) -> str:
    lines = []
    for _ in range(rng.randrange(12, 30)):
        line = rng.choice(_BOILERPLATE)
        lines.append(
            line.format(
                year=rng.randrange(2010, 2024),
                month=rng.randrange(1, 13),
                day=rng.randrange(1, 29),
                site=rng.choice(_BRANDS),
                tags=" ".join(_pick(rng, _TAGS, 4)),
            )
        )
    lines.insert(rng.randrange(len(lines)), _paragraph(rng, texts, 60))
    return "\n".join(lines)


def code(rng: random.Random, texts: Sequence[str]) -> str:
    a, b, c = _pick(rng, _IDENTS, 3)
    n = rng.randrange(2, 64)
    snippets = [
        f"function get{a.title()}({b}) {{\n  const {c} = [];\n  for (let i = 0; i < {b}.length; i++) {{\n"
        f"    if ({b}[i].{a} > {n}) {{\n      {c}.push({b}[i]);\n    }}\n  }}\n  return {c};\n}}",
        f".{a}-{b} {{\n  margin: 0 auto;\n  padding: {n}px;\n  color: #{rng.randrange(0x1000000):06x};\n"
        f"  display: flex;\n}}\n.{c}:hover {{\n  opacity: 0.{rng.randrange(1, 9)};\n}}",
        f"def {a}_{b}({c}):\n    result = {{}}\n    for key, value in {c}.items():\n        if value > {n}:\n"
        f"            result[key] = value\n    return result\n\n\nprint({a}_{b}({{'x': {n}}}))",
        f"SELECT {a}, COUNT(*) AS {b}_count\nFROM {c}s\nWHERE {a}_id > {n}\nGROUP BY {a}\nORDER BY {b}_count DESC\n"
        f"LIMIT {rng.randrange(5, 50)};",
    ]
    return "\n\n".join(rng.choice(snippets) for _ in range(rng.randrange(2, 6)))


def english(rng: random.Random, texts: Sequence[str]) -> str:
    sentences = [
        f"{rng.choice(_EN_SUBJECTS)} {rng.choice(_EN_VERBS)} {rng.choice(_EN_OBJECTS)} {rng.choice(_EN_TAILS)}"
        for _ in range(rng.randrange(8, 25))
    ]
    return " ".join(s.replace(" .", ".") for s in sentences)


def spam(rng: random.Random, texts: Sequence[str]) -> str:
    lines = []
    for _ in range(rng.randrange(10, 30)):
        words = " ".join(_pick(rng, _SPAM_WORDS, rng.randrange(3, 7)))
        lines.append(
            f"【{rng.choice(_SPAM_WORDS)}】{rng.choice(_BRANDS)} {rng.choice(_ITEMS)} {words} "
            f"¥{rng.randrange(5, 300) * 100:,}（税込）"
        )
    lines.append(" ".join(_pick(rng, _SPAM_WORDS + _ITEMS, rng.randrange(20, 60))))
    return "\n".join(lines)


GENERATORS = {"markup": markup, "boilerplate": boilerplate, "code": code, "english": english, "spam": spam}


def make_noise(texts: Sequence[str], target_chars: int, seed: int = 0) -> list[dict]:
    """Noise records totalling about `target_chars` characters, split by KIND_WEIGHTS; deterministic in `seed`.

    `texts` are real clean documents: paragraphs for the markup pages, and the originals the duplicates copy.
    """
    if not texts:
        return []
    rng = random.Random(seed)
    # Mirrored pages are page-sized; copying a whole novel eight times would swamp the budget in one draw.
    originals = [t for t in texts if len(t) <= 10_000] or list(texts)
    records: list[dict] = []
    spam_pages: list[str] = []
    for kind, weight in KIND_WEIGHTS.items():
        budget, made = int(target_chars * weight), 0
        while made < budget:
            if kind == "duplicate":
                # Copies of one real document or one spam page, 3 to 8 times, as crawls of mirrors produce.
                original = (
                    rng.choice(spam_pages) if spam_pages and rng.random() < 0.5 else rng.choice(originals)
                )
                copies = [original] * rng.randrange(3, 9)
            else:
                copies = [GENERATORS[kind](rng, texts)]
                if kind == "spam":
                    spam_pages.append(copies[0])
            for text in copies:
                records.append(
                    {"id": f"synthetic-{kind}-{len(records)}", "source": f"synthetic:{kind}", "text": text}
                )
                made += len(text)
    return records
