"""Cleaning for the real web, on real text: boilerplate lines, PII, decontamination, language ID, and a
clean process that never imports torch."""

from __future__ import annotations

import argparse
import itertools
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jalm.corpus import CleanConfig, clean
from jalm.corpus import command as clean_command
from jalm.corpus.langid import identify, japanese_probability
from jalm.corpus.lines import classify, clean_lines
from jalm.corpus.normalize import normalize_text
from jalm.corpus.pii import luhn_ok, mask_pii
from jalm.io import open_compressed
from jalm.jsonl import read_records

ROOT = Path(__file__).resolve().parents[1]
WIKI = ROOT / "data" / "corpus" / "wiki_jaquad.jsonl.zst"
AOZORA = ROOT / "data" / "corpus" / "aozora.jsonl.zst"
JSQUAD = ROOT / "data" / "eval" / "jsquad-valid-v1.1.json.zst"


def real_texts(path: Path, n: int, skip: int = 0) -> list[str]:
    return [r["text"] for r in itertools.islice(read_records([path]), skip, skip + n)]


def write_jsonl(path: Path, texts: list[str]) -> Path:
    with open(path, "w", encoding="utf-8") as out:
        for i, text in enumerate(texts):
            out.write(json.dumps({"id": f"doc-{i}", "text": text}, ensure_ascii=False) + "\n")
    return path


def kept_texts(out: Path) -> dict[str, str]:
    return {r["id"]: r["text"] for r in read_records(sorted((out / "kept").glob("*.jsonl*")))}


# ---- line cleaning -------------------------------------------------------------------------------

# A blog page's furniture around a real article; the expected rule of each boilerplate line.
HEADER = [
    ("TOP » 人物 » 漫画家", "breadcrumb"),
    ("公開日: 2023/04/01 12:34", "date"),
    ("ツイート シェア 12 はてブ LINEで送る", "share"),
]
FOOTER = [
    ("漫画の神様と呼ばれた人の生涯を振り返ると… 続きを読む", "read_more"),
    ("◆関連記事◆", "related"),
    ("アニメの歴史を解説", "related"),
    ("日本の漫画家一覧", "related"),
    ("Copyright © 2023 Example Media Inc.", "copyright"),
    ("ホーム | サイトマップ | プライバシーポリシー", "navigation"),
]
# Content lines that mention the same words inside prose: all must stay.
TRAPS = [
    "関連記事によると、この作品は1990年4月1日に再び出版された。",
    "2023年4月1日に記念館の新しい展示室が完成した。",
    "ホームページでは作品の一覧が公開されている。",
    "Copyright law の扱いについては出版社ごとに方針が異なる。",
    "シェアの大きい出版社ほど、続きを読むための電子版を早く出している。",
]


def furnished(article: str) -> str:
    body = "\n".join([article, *TRAPS])
    return "\n".join([*(line for line, _ in HEADER), body, *(line for line, _ in FOOTER)])


def test_boilerplate_lines_are_removed_and_counted_content_kept(tmp_path: Path) -> None:
    articles = real_texts(WIKI, 3)
    inputs = write_jsonl(tmp_path / "in.jsonl", [furnished(a) for a in articles[:2]] + [articles[2]])
    stats = clean([inputs], tmp_path / "out", progress=False)
    kept = kept_texts(tmp_path / "out")
    assert len(kept) == 3
    for doc_id in ("doc-0", "doc-1"):
        text = kept[doc_id]
        assert all(normalize_text(line) not in text.split("\n") for line, _ in HEADER + FOOTER)
        assert all(trap in text for trap in TRAPS)
    # The untouched article is byte for byte what normalisation makes of it.
    assert kept["doc-2"].split("\n")[0] == articles[2].split("\n")[0]
    expected: dict[str, list[int]] = {}
    for line, rule in HEADER + FOOTER:
        entry = expected.setdefault(rule, [0, 0])
        entry[0] += 2
        entry[1] += 2 * len(normalize_text(line))  # counted after NFKC (… is ...)
    counted = {rule: [e["lines"], e["chars"]] for rule, e in stats["refine"]["lines"].items()}
    assert counted == expected
    assert stats["refine"]["lines"]["related"]["documents"] == 2
    report = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "Boilerplate lines removed" in report and "before:" in report and "after:" in report


@pytest.mark.parametrize(
    ("line", "rule"),
    [
        ("ホーム > ニュース > 国内", "breadcrumb"),
        ("2024年12月31日(火) 更新", "date"),
        ("令和6年1月5日", "date"),
        ("Facebook Twitter LINE", "share"),
        ("ページの先頭へ戻る", "navigation"),
        ("« 前の記事 | 次の記事 »", "navigation"),
        ("無断転載・無断複製を禁じます。", "copyright"),
        ("もっと見る", "read_more"),
        ("【あわせて読みたい】", "related"),
        ("ホーム", None),  # alone: also a manual's section title
        ("検索", None),
        ("2024年12月31日に新しい駅が開業した。", None),
        ("関連項目については後述する。", None),
        ("x > 0 のときに限り、関数は正の値を返す。", None),
        ("(c) 3番目の条件を満たす場合", None),
    ],
)
def test_line_rules_match_whole_short_lines_only(line: str, rule: str | None) -> None:
    assert classify(line) == rule


def test_related_list_ends_at_the_first_prose_line() -> None:
    text = "本文の最後の段落である。\n関連リンク\n漫画の歴史\n戦後の出版文化\nここからは次の章で、戦後の雑誌について詳しく述べる。"
    cleaned, counts, removed = clean_lines(text, {})
    assert cleaned == "本文の最後の段落である。\nここからは次の章で、戦後の雑誌について詳しく述べる。"
    assert counts == {"related": [3, len("関連リンク") + len("漫画の歴史") + len("戦後の出版文化")]}
    assert [r[1] for r in removed] == ["related"] * 3


# ---- PII ------------------------------------------------------------------------------------------

PII_CASES = {
    "email": ["連絡先はtaro.yamada@example.co.jpまで", "info@jalm-test.org"],
    "phone": [
        "03-1234-5678",
        "090-1234-5678",
        "0120-123-456",
        "(06) 6123-4567",
        "+81 90 1234 5678",
        "09012345678",
    ],
    "ip": ["8.8.8.8", "203.104.128.10", "2001:4860:4860::8888"],
    "credit_card": ["4111 1111 1111 1111", "5555-5555-5555-4444", "3530111333300000"],
}
NOT_PII = [
    "127.0.0.1",  # loopback
    "192.168.0.1",  # private: every home router
    "10.0.0.12",
    "::1",
    "fe80::1",
    "バージョン 2.6.32.1",  # a version number shaped like an address
    "2023-04-01",
    "1,234,567円",
    "ISBN978-4-06-519981-7",
    "〒100-0001",  # postal codes are off by default (see pii.py)
    "4111 1111 1111 1112",  # fails the Luhn check
    "1234 5678 9012 3456",  # no issuer starts like this
    "03-1234-56789",  # one digit too many for a Japanese number
    "std::vector",
]


@pytest.mark.parametrize("kind", list(PII_CASES))
def test_pii_is_masked_per_kind(kind: str) -> None:
    for item in PII_CASES[kind]:
        masked, counts = mask_pii(f"問い合わせ先: {item} (平日のみ)")
        assert counts == {kind: 1}, item
        assert f"<{kind}>" in masked and "問い合わせ先:" in masked and "(平日のみ)" in masked


def test_non_pii_is_untouched() -> None:
    for item in NOT_PII:
        text = f"設定例: {item} を使う。"
        assert mask_pii(text) == (text, {}), item
    assert mask_pii("〒100-0001", ["postal_code"]) == ("<postal_code>", {"postal_code": 1})
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")


def test_pii_masked_in_a_clean_run_with_counts_and_switchable(tmp_path: Path) -> None:
    article = real_texts(WIKI, 1, skip=3)[0]
    text = (
        article
        + "\nお問い合わせは03-1234-5678またはinfo@example.co.jpまで。\nサーバーは8.8.8.8、開発機は127.0.0.1で動いている。"
    )
    inputs = write_jsonl(tmp_path / "in.jsonl", [text])
    stats = clean([inputs], tmp_path / "on", progress=False)
    (kept,) = kept_texts(tmp_path / "on").values()
    assert (
        "お問い合わせは<phone>または<email>まで。" in kept and "サーバーは<ip>、開発機は127.0.0.1で" in kept
    )
    assert stats["refine"]["pii"] == {
        kind: {"documents": 1, "replaced": 1} for kind in ("phone", "email", "ip")
    }
    assert "PII masked" in (tmp_path / "on" / "report.md").read_text(encoding="utf-8")
    # --pii off: the same document is written as normalised, no counts.
    args = clean_args(str(inputs), "--out", str(tmp_path / "off"), "--no-progress", "--pii", "off")
    assert clean_command.run(args) == 0
    (kept_off,) = kept_texts(tmp_path / "off").values()
    assert "03-1234-5678" in kept_off and "info@example.co.jp" in kept_off
    stats_off = json.loads((tmp_path / "off" / "stats.json").read_text(encoding="utf-8"))
    assert "pii" not in stats_off["refine"]


def clean_args(*argv: str) -> argparse.Namespace:
    """`jalm clean ARGV` parsed by the CLI's own parser, so every option has its real default."""
    from jalm.cli import build_parser

    return build_parser().parse_args(["clean", *argv])


# ---- decontamination ---------------------------------------------------------------------------


def jsquad_passage() -> str:
    with open_compressed(JSQUAD) as handle:
        squad = json.load(handle)
    context = squad["data"][0]["paragraphs"][0]["context"]
    return context.split("[SEP]", 1)[1].strip()


def test_evaluation_passage_is_rejected_and_near_miss_kept(tmp_path: Path) -> None:
    passage = jsquad_passage()
    story = real_texts(AOZORA, 2)
    # The same passage with every 25th character changed: it shares no 30-character run.
    near = "".join("〇" if i % 25 == 24 else ch for i, ch in enumerate(passage))
    inputs = write_jsonl(
        tmp_path / "in.jsonl",
        [story[0][:3000] + "\n" + passage + "\n" + story[0][3000:6000], story[1][:3000] + "\n" + near],
    )
    args = clean_args(
        str(inputs), "--out", str(tmp_path / "out"), "--no-progress", "--decontaminate", str(JSQUAD)
    )
    assert clean_command.run(args) == 0
    stats = json.loads((tmp_path / "out" / "stats.json").read_text(encoding="utf-8"))
    assert stats["rejected"] == {"decontaminated": 1}
    (rejected,) = list(read_records(sorted((tmp_path / "out" / "rejected").glob("*.jsonl*"))))
    assert rejected["id"] == "doc-0"
    assert rejected["reason"].startswith(
        f"decontaminated: shares a 30-character n-gram with {JSQUAD.name}: 「"
    )
    shared = rejected["reason"].split("「", 1)[1].rstrip("」")
    assert len(shared) == 30 and shared in "".join(normalize_text(passage).split())
    assert list(kept_texts(tmp_path / "out")) == ["doc-1"]
    d = stats["refine"]["decontamination"]
    assert d["checked"] == 2 and d["rejected"] == {JSQUAD.name: 1} and d["index"]["ngrams"] > 100_000


# ---- language identification -----------------------------------------------------------------


def test_langid_on_short_and_mixed_text() -> None:
    # Real lines of the bundled help pages (data/noisy), short and mixed with English terms.
    assert identify("梅雨は雨季の一種である。")[0][0] == "ja"
    assert japanese_probability("aptitude をソースからインストールできます。")[0] > 0.5
    mixed = "デフォルトのページ ヘッダは、ページ番号と \\header ブロックの instrument フィールドを同一の行に配置します。"
    assert japanese_probability(mixed)[0] > 0.5
    english = "Select the horizontal alignment option that you want to apply to the cell contents."
    probability, top, _ = japanese_probability(english)
    assert probability < 0.1 and top == "en"


def test_language_filter_keeps_technical_japanese_in_the_uncertain_band(tmp_path: Path) -> None:
    # Technical Japanese under 50 % Japanese characters, as a manual page is: kept by fastText.
    manual = "\n".join(
        [
            "GIMP の Script-Fu で画像を一括処理するには、gimp -i -b '(batch-unsharp-mask \"*.png\" 5.0 0.5 0)' -b '(gimp-quit 0)' を実行します。",
            "このコマンドは ~/.config/GIMP/2.10/scripts/batch-unsharp-mask.scm に保存したスクリプトを読み込みます。",
            "引数 radius と amount は unsharp-mask フィルターの値で、filename-pattern には glob パターンを渡します。",
            "Windows では gimp-console-2.10.exe を使い、PATH に C:\\Program Files\\GIMP 2\\bin を追加してください。",
            "出力ファイルは上書きされるので、先に cp -r images images.bak でバックアップを取っておきます。",
        ]
    )
    english = "\n".join(
        [
            "To process many images at once, run GIMP in batch mode with the Script-Fu console disabled.",
            "The script reads every file that matches the pattern, applies the filter and saves it in place.",
            "Use the console binary on Windows and add the installation folder to the PATH variable.",
            "Back up the folder first: the files are overwritten without asking for confirmation.",
            "この説明は英語版のままです。",
        ]
    )
    inputs = write_jsonl(tmp_path / "in.jsonl", [manual, english])
    stats = clean([inputs], tmp_path / "out", progress=False)
    assert list(kept_texts(tmp_path / "out")) == ["doc-0"]
    assert sum(stats["rejected"].values()) == 1
    (rejected,) = list(read_records(sorted((tmp_path / "out" / "rejected").glob("*.jsonl*"))))
    assert rejected["reason"].startswith(("japanese_share:", "language:"))


# ---- no torch in the cleaning path ----------------------------------------------------------


def test_clean_process_and_workers_never_import_torch(tmp_path: Path) -> None:
    inputs = write_jsonl(tmp_path / "a.jsonl", real_texts(WIKI, 2))
    write_jsonl(tmp_path / "b.jsonl", real_texts(AOZORA, 2))
    # -X importtime is passed on to spawned workers: their imports are on stderr too.
    command = [
        sys.executable, "-X", "importtime", "-m", "jalm", "clean", str(inputs), str(tmp_path / "b.jsonl"),
        "--out", str(tmp_path / "out"), "--workers", "2", "--no-progress",
        "--decontaminate", str(JSQUAD),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=True, env=_env())
    imported = [
        line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if "import time:" in line
    ]
    assert "jalm.corpus.shardjob" in imported and imported.count("jalm.corpus.shardjob") >= 2  # the workers'
    assert not [name for name in imported if name.split(".")[0] in ("torch", "transformers")]
    assert "clean: 4 docs" in done.stdout


def _env() -> dict[str, str]:
    import os

    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_config_rejects_unknown_pii_kind_and_missing_eval_file(tmp_path: Path) -> None:
    from jalm.errors import JalmError

    with pytest.raises(JalmError, match="unknown PII kind"):
        CleanConfig.load(overrides={"pii": {"kinds": ["passport"]}})
    with pytest.raises(JalmError, match="no such evaluation file"):
        CleanConfig.load(overrides={"decontaminate": {"files": [str(tmp_path / "missing.jsonl")]}})


def reference_clean_lines(text: str, p: dict) -> tuple[str, list]:
    """clean_lines as first written: every line looked at in turn (the fast path skips lines that
    cannot match; this is what it must equal)."""
    from jalm.corpus import lines as L

    rules = set(p.get("rules", L.RULES))
    drop, in_block = [], 0
    for i, raw in enumerate(text.split("\n")):
        line = raw.strip()
        if not line:
            continue
        if len(line) > 200:
            in_block = 0
            continue
        if in_block and L._link_like(line, 60) and not classify(line):
            drop.append((i, "related"))
            in_block -= 1
            continue
        rule = classify(line)
        in_block = 30 if rule == "related" and "related" in rules else 0
        if rule is not None and rule in rules:
            drop.append((i, rule))
    gone = {i for i, _ in drop}
    kept = "\n".join(line for i, line in enumerate(text.split("\n")) if i not in gone)
    return re.sub(r"\n{3,}", "\n\n", kept).strip(), drop


def generated_boilerplate(rng) -> list[str]:
    """Lines the rules are about, put together from their own word lists, with content around."""
    from jalm.corpus import lines as L

    def words(pool, k):
        return rng.choice([" ", " | ", "・", " / ", "  ", "\u3000", ""]).join(rng.choices(pool, k=k))

    year, month, day = rng.randint(1990, 2030), rng.randint(1, 12), rng.randint(1, 28)
    return [
        words(L._NAV_SURE + L._NAV_WEAK, rng.randint(1, 4)) + rng.choice(["", " 1 2 3", " ..."]),
        words(L._SHARE_SURE + L._SHARE_WEAK, rng.randint(1, 5)) + rng.choice(["", " 12", " (3)"]),
        rng.choice(["", "【", "■ ", "▼", "<", "- "])
        + rng.choice(L._RELATED_WORDS)
        + rng.choice(["", "】", ":", "一覧"]),
        rng.choice(["", "投稿日: ", "更新日時 ", "最終更新:"])
        + rng.choice(
            [f"{year}年{month}月{day}日", f"{year}/{month:02d}/{day:02d}", f"令和{month}年{day}月1日"]
        )
        + rng.choice(["", "(土)", " 12:34", " 更新", "(Mon) 09:00:01"]),
        f"{year}年{month}月 ({day})",
        " > ".join(
            rng.choices(["ホーム", "ニュース", "国内", "TOP", "製品情報", "FAQ"], k=rng.randint(2, 4))
        ),
        rng.choice(
            [
                "© 2024 株式会社サンプル",
                "Copyright (c) 2019 Example Inc.",
                "All Rights Reserved.",
                "無断転載を禁じます。",
            ]
        ),
        rng.choice(
            ["続きを読む", "もっと見る »", "[Read more]", "…の話はここまで… 続きを読む", "詳しくはこちら"]
        ),
        "戦後の出版文化",  # a related list's member
        "本文の段落であり、ここは残る。",
        "ここは見出し",
    ]


def test_fast_clean_lines_equals_looking_at_every_line() -> None:
    import random

    from jalm.corpus.lines import _candidate_lines

    rng = random.Random(0)
    documents = real_texts(WIKI, 40) + real_texts(AOZORA, 10)
    documents += [
        r["text"]
        for r in itertools.islice(read_records([ROOT / "data" / "noisy" / "web_raw.jsonl.zst"]), 200)
    ]
    documents = [normalize_text(t) for t in documents]
    for _ in range(300):
        lines = generated_boilerplate(rng)
        rng.shuffle(lines)
        documents.append("\n".join(lines[: rng.randint(1, len(lines))]))
    removed_somewhere = 0
    for text in documents:
        cleaned, counts, removed = clean_lines(text, {})
        assert (cleaned, [(i, rule) for i, rule, _ in removed]) == reference_clean_lines(text, {})
        removed_somewhere += bool(removed)
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        candidates = _candidate_lines(text, codes, np.flatnonzero(codes == 10))
        for i, line in enumerate(text.split("\n")):  # every line a rule matches is a candidate
            if line.strip() and classify(line.strip()) is not None:
                assert i in candidates, line
    assert removed_somewhere > 250  # the generated documents do hold boilerplate


def test_whitespace_list_is_what_the_rules_call_white_space() -> None:
    import re

    from jalm.corpus.lines import _WHITESPACE

    assert {c for c in map(chr, range(0x110000)) if re.fullmatch(r"\s", c)} == set(_WHITESPACE)


def test_pii_trigger_positions_equal_a_plain_scan() -> None:
    """The array version finds exactly the positions a character-by-character look finds."""
    import random

    from jalm.corpus.pii import _trigger_positions

    def plain(text: str) -> list[int]:
        digit, sep = (lambda c: "0" <= c <= "9"), (lambda c: c in "-.:() ")
        found = set()
        for i, c in enumerate(text):
            if c == "@":
                found.add(i)
            if digit(c) and i + 2 < len(text) and sep(text[i + 1]):
                if digit(text[i + 2]) or (i + 3 < len(text) and sep(text[i + 2]) and digit(text[i + 3])):
                    found.add(i)
            if all(digit(ch) for ch in text[i : i + 10]) and i + 10 <= len(text):
                found.add(i)
        return sorted(found)

    rng = random.Random(1)
    alphabet = "0123456789-.:() @a電話\n"
    texts = ["".join(rng.choices(alphabet, k=rng.randint(0, 40))) for _ in range(3000)]
    texts += real_texts(WIKI, 20) + ["03-1234-5678", "09012345678", "1 (2", "1:"]
    for text in texts:
        assert _trigger_positions(text) == plain(text), text


def test_normalisation_hands_over_the_code_points_of_its_result() -> None:
    """normalize_with_codes' code points (which the filters' Features then use) are those of the
    text it returns, or None; for raw web pages, Aozora, Wikipedia and edge cases."""
    from jalm.corpus.normalize import normalize_with_codes

    texts = real_texts(WIKI, 30) + real_texts(AOZORA, 5)
    texts += [
        r["text"]
        for r in itertools.islice(read_records([ROOT / "data" / "noisy" / "web_raw.jsonl.zst"]), 100)
    ]
    texts += [
        "",
        " 先頭に空白",
        "全角ＡＢＣ１２３",
        "改行\r\nCR",
        "行末 \n空白",
        "三つの\n\n\n改行",
        "…と㈱",
        "ｶﾞ",
        "a\x00b",
    ]
    handed = 0
    for raw in texts:
        text, codes = normalize_with_codes(raw)
        assert text == normalize_text(raw)
        if codes is not None:
            handed += 1
            assert codes.tolist() == [ord(c) for c in text], raw[:40]
    assert handed > len(texts) // 2  # most documents need no second encoding
