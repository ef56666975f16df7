"""Synthetic noise, generated deterministically from a seed: the one home of the two generators.

- `make_noise` (the filtering experiment, `jalm experiment filtering`): a crawl-like mix of kinds,
  by a character budget (below).
- `make_labelled_noise` (the clean-stage quality benchmark, benchmarks/clean_quality.py): a fixed
  number of documents per category, plus near-duplicates of given clean texts (see its section).

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


# ---- labelled noise for the clean-stage quality benchmark ---------------------------------------
#
# Hand-written templates, filled at random. No clearly licensed real SEO spam, ads or BBS threads were
# found (see ../shared/data/README.md), so every noise document of the benchmark is synthetic, written
# for it from the categories LINE's blog and issue 3 name: SEO/listing spam (and variants), ads and
# shop pages, BBS threads, source code, English pages, navigation text, near-duplicates with small
# edits, plus repeated text, non-Japanese CJK text and keyword stuffing. None of it was used to set
# jalm's default configuration (which was set on data/corpus, data/noisy and tests/fixtures/clean
# only), and the defaults were not changed after the benchmark was first run.

PLACES = [
    (
        "千葉県",
        [
            "船橋市",
            "千葉市中央区",
            "市川市",
            "松戸市",
            "柏市",
            "習志野市",
            "浦安市",
            "八千代市",
            "流山市",
            "佐倉市",
        ],
    ),
    ("埼玉県", ["さいたま市浦和区", "川口市", "川越市", "所沢市", "越谷市", "草加市", "春日部市", "上尾市"]),
    ("神奈川県", ["横浜市港北区", "川崎市中原区", "相模原市", "藤沢市", "横須賀市", "平塚市", "茅ヶ崎市"]),
    ("大阪府", ["大阪市北区", "堺市", "豊中市", "吹田市", "高槻市", "枚方市", "東大阪市", "茨木市"]),
    ("福岡県", ["福岡市博多区", "北九州市小倉北区", "久留米市", "飯塚市", "春日市", "大牟田市"]),
    ("北海道", ["札幌市中央区", "旭川市", "函館市", "釧路市", "帯広市", "苫小牧市"]),
]
PROPERTIES = ["一戸建て", "マンション", "土地", "中古住宅", "アパート", "空き家", "農地", "店舗"]
ACTIONS = ["を売る", "を高く売る", "の売却", "の買取", "の査定", "の相場", "を売りたい", "を処分する"]
SERVICES = [
    "外壁塗装",
    "不用品回収",
    "ハウスクリーニング",
    "遺品整理",
    "エアコン取り付け",
    "水道修理",
    "引越し",
    "脱毛サロン",
]
PRODUCTS = [
    ("ワイヤレスイヤホン", 3980),
    ("電動歯ブラシ", 5480),
    ("美容液 30ml", 2980),
    ("プロテイン 1kg", 4280),
    ("ノートパソコンスタンド", 1980),
    ("炊飯器 5.5合", 12800),
    ("ダウンジャケット", 8900),
    ("ランニングシューズ", 6980),
    ("スマホケース", 1280),
    ("加湿器", 3580),
]


def _pick_places(rng: random.Random, k: int) -> list[str]:
    pref, cities = rng.choice(PLACES)
    others = [p + c for p, cs in PLACES for c in cs]
    chosen = [pref + c for c in rng.sample(cities, min(k, len(cities)))]
    while len(chosen) < k:
        chosen.append(rng.choice(others))
    return chosen


def _seo_listing(rng: random.Random) -> str:
    """LINE's example 「千葉県船橋市の一戸建てを売る 千葉県千葉市中央区の一戸建てを売る …」 and variants."""
    prop, action = rng.choice(PROPERTIES), rng.choice(ACTIONS)
    places = _pick_places(rng, rng.randint(14, 40))
    style = rng.randrange(6)
    if style == 0:
        return " ".join(f"{p}の{prop}{action}" for p in places)
    if style == 1:
        return "\n".join(f"{p}の{prop}{action}" for p in places)
    if style == 2:
        return "｜".join(f"{p} {prop} {action.lstrip('をの')}" for p in places)
    if style == 3:
        props = rng.sample(PROPERTIES, 3)
        return "、".join(f"{p}{q}{action}" for p in places for q in props[:2])
    if style == 4:
        head = f"{prop}{action}なら当社へ。無料査定実施中！\n対応エリア："
        return head + "、".join(places) + "\n" + "\n".join(f"{p}で{prop}{action}" for p in places)
    # sentences, but the same sentence for every place
    service = rng.choice(SERVICES)
    company = rng.choice(["株式会社ミライ", "ホームサービス株式会社", "くらしの窓口", "あんしん本舗"])
    return "".join(
        f"{p}で{service}をお探しなら{company}にお任せください。{p}の{service}なら最短即日対応、お見積もりは無料です。"
        for p in places
    )


def _ads(rng: random.Random) -> str:
    items = rng.sample(PRODUCTS, rng.randint(4, 8))
    style = rng.randrange(3)
    if style == 0:  # shop listing
        lines = []
        for name, price in items:
            lines += [
                f"【公式】{name} 送料無料 ポイント10倍",
                f"通常価格 {price * 2:,}円 → 特別価格 {price:,}円(税込)",
                rng.choice(["在庫あり 即日発送", "残りわずか", "期間限定セール中"]),
                "カートに入れる",
            ]
        return "\n".join(lines)
    if style == 1:  # affiliate blog
        name, price = items[0]
        lines = [
            f"【2024年最新】{name}のおすすめランキングTOP10！口コミで人気の商品を徹底比較",
            f"今なら初回限定で{price:,}円が半額！送料無料でお届けします。",
            "詳しくはこちら▼▼▼",
            "▶公式サイトで最安値をチェック",
        ]
        for rank, (item, p) in enumerate(items, 1):
            lines += [
                f"第{rank}位 {item}",
                f"価格:{p:,}円(税込) 評価:★★★★☆",
                "公式サイトはこちら",
                "今すぐ購入する",
            ]
        lines.append("※当サイトはアフィリエイトプログラムを利用しています。スポンサーリンク")
        return "\n".join(lines)
    # coupon / campaign page
    code = "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(8))
    lines = [f"クーポンコード【{code}】で全品20%OFF！", "期間限定 数量限定 早い者勝ち！", "今すぐクリック！"]
    for name, price in items:
        lines.append(f"{name} {price:,}円 → クーポン利用で{int(price * 0.8):,}円 送料無料")
    lines += ["お申し込みはこちら", "無料会員登録でさらにポイント還元", "返品保証・返金保証つき"]
    return "\n".join(lines)


BBS_LINES = [
    "それな",
    "ワロタ",
    "これはひどい",
    "ソースは？",
    "今北産業",
    "kwsk",
    "マジかよ",
    "草",
    "ぐう畜",
    "はい論破",
    "ほんこれ",
    "まーたこのパターンか",
    "おまえら仕事しろ",
    "釣りだろ",
    "昔はよかった",
    "それ前スレでも言われてたぞ",
    "どこ情報だよ",
    "ステマ乙",
    "あげ",
    "もう終わりだよこの国",
]
BOARD_TOPICS = ["家電", "ゲーム", "野球", "ラーメン", "転職", "株", "アニメ", "車"]


def _bbs(rng: random.Random) -> str:
    topic = rng.choice(BOARD_TOPICS)
    n = rng.randint(12, 40)
    style = rng.randrange(3)
    out = []
    if style == 0:  # 2ch-style thread
        out.append(f"【悲報】{topic}板、過疎りすぎる Part{rng.randint(2, 99)}")
        for i in range(1, n + 1):
            id_ = "".join(
                rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
                for _ in range(8)
            )
            out.append(
                f"{i} 名前:名無しさん@お腹いっぱい。 2023/{rng.randint(1, 12):02d}/{rng.randint(1, 28):02d}"
                f"(土) {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}.{rng.randint(0, 99):02d} ID:{id_}"
            )
            reply = f">>{rng.randint(1, i)}\n" if i > 1 and rng.random() < 0.6 else ""
            out.append(reply + rng.choice(BBS_LINES))
    elif style == 1:  # Q&A board
        out.append(f"{topic}について質問です。おすすめを教えてください。")
        for _ in range(n):
            out.append(
                f"投稿者:{rng.choice(['匿名', 'ななし', 'ゲスト', 'taro', 'hanako'])}さん  投稿日:2022/{rng.randint(1, 12)}/{rng.randint(1, 28)}"
            )
            out.append(rng.choice(BBS_LINES) + rng.choice(["", "w", "www", "(笑)"]))
            out.append(f"返信する  いいね!({rng.randint(0, 50)})")
    else:  # comment section
        for i in range(n):
            out.append(f"{i + 1}. 名無し {rng.randint(10, 23)}:{rng.randint(0, 59):02d}")
            out.append(f">>{rng.randint(1, i + 1)} " + rng.choice(BBS_LINES))
    return "\n".join(out)


CODE_SNIPPETS = [
    """import os
import sys
from pathlib import Path

# 設定ファイルを読み込む
def load_config(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)  # 辞書で返す

class Downloader:
    def __init__(self, url, retries=3):
        self.url = url
        self.retries = retries  # 再試行回数

    def fetch(self):
        for i in range(self.retries):
            try:
                return requests.get(self.url, timeout=10).text
            except requests.RequestException as e:
                print(f"失敗しました: {e}")
        return None
""",
    """// ユーザー一覧を取得する
async function fetchUsers(page = 1) {
  const res = await fetch(`/api/users?page=${page}`);
  if (!res.ok) {
    throw new Error('取得に失敗しました');
  }
  const data = await res.json();
  return data.users.map((u) => ({ id: u.id, name: u.name }));
}

document.querySelector('#load').addEventListener('click', async () => {
  const users = await fetchUsers();
  console.log(users.length + '件取得');
});
""",
    """SELECT u.id, u.name, COUNT(o.id) AS order_count -- 注文数
FROM users u
LEFT JOIN orders o ON o.user_id = u.id
WHERE u.created_at >= '2023-01-01'
GROUP BY u.id, u.name
HAVING COUNT(o.id) > 3
ORDER BY order_count DESC;

CREATE INDEX idx_orders_user ON orders(user_id); -- 高速化のため
""",
    """#!/bin/bash
# バックアップスクリプト
set -euo pipefail
SRC=/var/www/html
DEST=/backup/$(date +%Y%m%d)
mkdir -p "$DEST"
rsync -av --delete "$SRC/" "$DEST/"
if [ $? -eq 0 ]; then
  echo "バックアップ完了"
else
  echo "エラーが発生しました" >&2
  exit 1
fi
""",
    """#include <stdio.h>
#include <stdlib.h>

/* 配列の合計を求める */
int sum(const int *a, size_t n) {
    int s = 0;
    for (size_t i = 0; i < n; i++) {
        s += a[i];
    }
    return s;
}

int main(void) {
    int data[] = {1, 2, 3, 4, 5};
    printf("合計: %d\\n", sum(data, 5));
    return 0;
}
""",
    """.header {
  display: flex;
  justify-content: space-between; /* 左右に配置 */
  padding: 0 16px;
}
.header__logo img { width: 120px; }
@media (max-width: 768px) {
  .header { flex-direction: column; } /* スマホ表示 */
}
""",
]


def _code(rng: random.Random) -> str:
    snippets = rng.sample(CODE_SNIPPETS, rng.randint(2, 4))
    style = rng.randrange(2)
    if style == 0:
        return "\n".join(snippets)
    # a tutorial that is mostly code with a little Japanese around it
    parts = [
        rng.choice(
            ["今回はサンプルコードを紹介します。", "以下のコードで実装できます。", "コピペで動きます。"]
        )
    ]
    for snippet in snippets:
        parts += [
            snippet,
            rng.choice(["実行結果は以下の通りです。", "これで完了です。", "次に以下を追加します。"]),
        ]
    return "\n".join(parts)


ENGLISH = [
    "Welcome to our online store. We offer the best prices on electronics, books and home goods.",
    "Free shipping on all orders over fifty dollars. Sign up for our newsletter to receive exclusive deals.",
    "The city council voted on Tuesday to approve the new budget, which includes funding for parks and schools.",
    "Researchers at the university have developed a new method for recycling plastic waste into fuel.",
    "Click here to read more about our privacy policy and terms of service.",
    "This article explains how to configure the server for high availability using a load balancer.",
    "In the second half, the home team scored twice to secure a comfortable victory.",
    "Our support team is available around the clock to answer your questions by email or chat.",
    "The museum's new exhibition features more than two hundred works by contemporary Japanese artists.",
    "To install the package, run the following command and restart your terminal.",
    "Tokyo is one of the most visited cities in the world, famous for its food, temples and nightlife.",
    "Prices are subject to change without notice. All rights reserved.",
]


def _english(rng: random.Random) -> str:
    sentences = [rng.choice(ENGLISH) for _ in range(rng.randint(8, 24))]
    if rng.random() < 0.5:  # a Japanese title on an English page (HojiChar looks at 50 chars only)
        sentences.insert(0, rng.choice(["東京観光ガイド", "お知らせ", "製品情報", "ニュース"]) + "\n")
    return " ".join(sentences)


NAV_ITEMS = [
    "ホーム",
    "会社概要",
    "事業内容",
    "サービス一覧",
    "採用情報",
    "お知らせ",
    "ブログ",
    "よくある質問",
    "お問い合わせ",
    "アクセス",
    "サイトマップ",
    "プライバシーポリシー",
    "利用規約",
    "個人情報保護方針",
    "ログイン",
    "新規会員登録",
    "カートを見る",
    "マイページ",
    "English",
    "ページトップへ",
]


def _navigation(rng: random.Random) -> str:
    style = rng.randrange(4)
    if style == 0:  # menus + footer
        menu = rng.sample(NAV_ITEMS, rng.randint(8, 14))
        footer = f"Copyright © {rng.randint(2005, 2024)} {rng.choice(['株式会社サンプル', 'Example Inc.', '有限会社テスト'])} All Rights Reserved."
        return "\n".join(menu + ["", "カテゴリー"] + rng.sample(NAV_ITEMS, 6) + ["", footer])
    if style == 1:  # breadcrumbs and pagination
        lines = []
        for _ in range(rng.randint(6, 12)):
            lines.append(
                " > ".join(
                    ["ホーム"]
                    + rng.sample(
                        ["ニュース", "スポーツ", "野球", "経済", "カテゴリー", "アーカイブ", "2023年"], 3
                    )
                )
            )
        lines.append(" ".join(["前へ"] + [str(i) for i in range(1, rng.randint(8, 15))] + ["次へ"]))
        return "\n".join(lines)
    if style == 2:  # tag cloud / archive list
        tags = [
            "東京",
            "グルメ",
            "旅行",
            "カフェ",
            "ラーメン",
            "温泉",
            "子育て",
            "節約",
            "投資",
            "副業",
            "ダイエット",
            "筋トレ",
            "映画",
            "読書",
        ]
        months = [f"{y}年{m}月 ({rng.randint(1, 30)})" for y in (2022, 2023) for m in range(1, 13)]
        return (
            "タグ一覧\n"
            + " ".join(rng.sample(tags, 12))
            + "\nアーカイブ\n"
            + "\n".join(rng.sample(months, rng.randint(12, 24)))
        )
    # link list with descriptions cut off
    lines = []
    for _ in range(rng.randint(8, 16)):
        title = rng.choice(
            [
                "新商品のお知らせ",
                "年末年始の営業について",
                "システムメンテナンスのお知らせ",
                "キャンペーン開始",
                "臨時休業のご案内",
            ]
        )
        lines.append(
            f"{rng.randint(2020, 2024)}.{rng.randint(1, 12):02d}.{rng.randint(1, 28):02d} {title}・・・"
        )
    lines.append("一覧を見る")
    return "\n".join(lines)


REPEATED = [
    "今日はとても良い天気でした。",
    "このページは現在準備中です。",
    "ご覧いただきありがとうございます。",
    "詳細は後日お知らせします。",
]


def _repetition(rng: random.Random) -> str:
    """Degenerate text: one sentence or paragraph many times, or a character flood."""
    style = rng.randrange(3)
    if style == 0:
        return rng.choice(REPEATED) * rng.randint(20, 60)
    if style == 1:
        paragraph = "".join(rng.sample(REPEATED, 3))
        return "\n\n".join([paragraph] * rng.randint(8, 20))
    return "あ" * rng.randint(100, 300) + "。" + "ー" * rng.randint(50, 200) + "!" * rng.randint(10, 50)


CHINESE = [
    "我们公司成立于二零一零年，主要从事电子产品的研发和销售。",
    "本网站提供最新的新闻资讯和娱乐信息，欢迎各位用户访问。",
    "这个问题已经解决了，请大家不要再提交重复的报告。",
    "今天天气很好，我们一起去公园散步吧。",
    "请在下方输入您的用户名和密码，然后点击登录按钮。",
]


def _chinese(rng: random.Random) -> str:
    return "".join(rng.choice(CHINESE) for _ in range(rng.randint(10, 30)))


def _keyword_stuffing(rng: random.Random) -> str:
    words = [
        "激安",
        "通販",
        "送料無料",
        "人気",
        "ランキング",
        "口コミ",
        "最安値",
        "比較",
        "おすすめ",
        "評判",
        "格安",
        "安い",
        "セール",
    ]
    product = rng.choice(PRODUCTS)[0]
    return "\n".join(
        " ".join([product] + rng.sample(words, rng.randint(4, 8))) + rng.choice(["", "!", "♪", "★"])
        for _ in range(rng.randint(10, 30))
    )


def near_duplicate(text: str, rng: random.Random) -> str:
    """A copy with small edits: characters changed, a sentence dropped, a credit line added."""
    chars = list(text)
    for _ in range(rng.randint(1, max(2, len(chars) // 300))):
        chars[rng.randrange(len(chars))] = rng.choice("のはがをにでとあいうアイウ")
    edited = "".join(chars)
    sentences = edited.split("。")
    if len(sentences) > 4:
        del sentences[rng.randrange(1, len(sentences) - 1)]
    edited = "。".join(sentences)
    return (
        rng.choice(["", "【転載】", "(引用元より)\n"])
        + edited
        + rng.choice(["", "\n出典:ウェブサイトより転載", "\nこの記事をシェアする"])
    )


CATEGORIES = {
    "seo_listing": _seo_listing,
    "ads": _ads,
    "bbs": _bbs,
    "code": _code,
    "english": _english,
    "navigation": _navigation,
    "repetition": _repetition,
    "chinese": _chinese,
    "keyword_stuffing": _keyword_stuffing,
}


def make_labelled_noise(
    clean_texts: list[str], seed: int = 2024, per_category: int = 40, near_duplicates: int = 80
) -> list[dict]:
    """`per_category` documents of each of CATEGORIES, then `near_duplicates` edited copies of
    `clean_texts`, as records {"id", "text", "label": "noise", "category", "synthetic": true} (and
    "copy_of", the index of the copied text); deterministic in `seed`."""
    rng = random.Random(seed)
    records = []
    for category, generator in CATEGORIES.items():
        for i in range(per_category):
            records.append(
                {
                    "id": f"noise-{category}-{i}",
                    "text": generator(rng),
                    "label": "noise",
                    "category": category,
                    "synthetic": True,
                }
            )
    for i, source in enumerate(rng.sample(range(len(clean_texts)), near_duplicates)):
        records.append(
            {
                "id": f"noise-near_duplicate-{i}",
                "text": near_duplicate(clean_texts[source], rng),
                "label": "noise",
                "category": "near_duplicate",
                "synthetic": True,
                "copy_of": source,
            }
        )
    return records
