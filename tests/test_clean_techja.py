"""Technical Japanese (real manual pages: commands, options, paths, URLs, tables, example programs)
is kept by the default rules, each document by the rule that used to reject it; real noise is still
rejected; dedup keeps one copy of every group of duplicates."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from jalm.corpus import CleanConfig, clean
from jalm.corpus.dedup_memory import (
    keep_one_per_group,  # the reference path; the out-of-core one is tested equal to it
)
from jalm.corpus.features import Features, lookup_table
from jalm.corpus.filters import FILTERS
from jalm.corpus.normalize import normalize_text
from jalm.jsonl import read_records

FIXTURES = Path(__file__).parent / "fixtures" / "clean"
SAMPLE = [
    json.loads(line) for line in (FIXTURES / "techja_sample.jsonl").read_text(encoding="utf-8").splitlines()
]
NOISE = [
    json.loads(line) for line in (FIXTURES / "techja_noise.jsonl").read_text(encoding="utf-8").splitlines()
]

# The parameters each rule had before it learnt about technical prose (removing the new keys
# restores the old rule exactly).
NEW_KEYS = {
    "japanese_share": ["floor", "min_prose_lines", "min_in_prose"],
    "markup": ["max_construct_share"],
    "char_repetition": ["ascii_free_retry", "named_entries_retry"],
    "code": ["min_prose_sentences", "min_prose_share"],
    "sentence_end": ["skip_tables"],
}


def old_params(rule: str, params: dict) -> dict:
    params = copy.deepcopy(params)
    for key in NEW_KEYS.get(rule, []):
        params.pop(key)
    if rule == "url_email":
        params["min_count"] = 3
    return params


@pytest.fixture(scope="module")
def filters() -> dict:
    return dict(CleanConfig.load().filters())


@pytest.mark.parametrize("record", SAMPLE, ids=[r["old_rule"] + ":" + r["id"][:40] for r in SAMPLE])
def test_technical_japanese_passes_the_rule_that_used_to_reject_it(record, filters):
    rule = record["old_rule"]
    features = Features(normalize_text(record["text"]), lookup_table(list(filters.items())))
    old = FILTERS[rule](features, old_params(rule, filters[rule]))
    assert old is not None and old.startswith(rule), old  # the old rule rejected it ...
    assert FILTERS[rule](features, filters[rule]) is None  # ... the new one keeps it
    for name, params in filters.items():  # and so does every other rule
        assert FILTERS[name](features, params) is None, (name, FILTERS[name](features, params))


def test_clean_keeps_the_sample_and_rejects_the_noise(tmp_path):
    data = tmp_path / "in.jsonl"
    with open(data, "w", encoding="utf-8") as handle:
        for record in SAMPLE + NOISE:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    stats = clean([data], tmp_path / "out", progress=False, report=False)
    kept = {r["id"] for r in read_records(sorted((tmp_path / "out" / "kept").glob("*.jsonl*")))}
    reasons = {
        r["id"]: r["reason"] for r in read_records(sorted((tmp_path / "out" / "rejected").glob("*.jsonl*")))
    }
    assert kept == {r["id"] for r in SAMPLE}
    assert stats["kept"] == len(SAMPLE)
    assert reasons["roff-whoami.1"].startswith("markup:")
    assert any(
        reason.startswith("japanese_share:") for key, reason in reasons.items() if key.startswith("english-")
    )


def test_boilerplate_words_in_prose_do_not_count(filters):
    """アーカイブ or ログイン in sentences is not a menu; the same words as menu lines are."""
    prose = (
        "tar はファイルをアーカイブにまとめるコマンドです。アーカイブを展開するには -x を使います。"
        "圧縮したアーカイブは gzip で扱えます。ログインしているユーザの一覧は who で表示できます。"
        "ログイン時に読まれるファイルは ~/.profile です。アーカイブの中身は -t で確認します。"
    ) * 2
    menu = (
        prose
        + "\n"
        + "\n".join(["ホーム", "ログイン", "アーカイブ", "カテゴリー", "お問い合わせ", "サイトマップ"] * 2)
    )
    keywords = filters["keywords"]
    assert FILTERS["keywords"](Features(prose), keywords) is None
    assert FILTERS["keywords"](Features(menu), keywords).startswith("keywords: boilerplate")


def test_markup_constructs_not_symbols(filters):
    """Paths, identifiers and placeholders are symbols of technical prose; tags are markup."""
    prose = (
        "設定ファイル /etc/cron.d/job と /usr/lib/cron/cron_allow を読み、<username> ごとに O_RDONLY で開く。"
        "[-a] [--all] のどちらかを指定する。"
    ) * 4
    html = prose + "".join(f'<div class="nav"><a href="/p/{i}">項目{i}</a></div>' for i in range(20))
    assert FILTERS["markup"](Features(prose), filters["markup"]) is None
    assert FILTERS["markup"](Features(html), filters["markup"]).startswith("markup:")


ARCHES = ["i386-efi", "x86_64-efi", "ia64-efi", "arm64-efi", "arm-efi", "riscv32-efi", "riscv64-efi"]
ARCHES += ["i386-pc", "x86_64-xen", "mips-linux", "sparc64-linux", "powerpc-linux"]
PLACES = ["千葉県船橋市", "千葉県柏市", "埼玉県川口市", "大阪府吹田市", "北海道函館市", "福岡県春日市"]
PLACES += ["神奈川県平塚市", "埼玉県草加市", "千葉県浦安市", "大阪府高槻市", "北海道帯広市", "埼玉県所沢市"]


def test_reference_entries_naming_their_identifiers_are_not_repetition(filters):
    """A reference page (after grub-file(1)) says the same sentence for each option, the option and
    architecture telling the entries apart: kept. The same frame around Japanese place names (an SEO
    listing), a slogan repeated with the same product name, or the page pasted twice: rejected."""
    head = "名前\n       grub-file - ファイルタイプをチェックする\n\n説明\n       FILE が指定されたタイプかどうかをチェックします。\n\n"
    body = "".join(
        f"       --is-{arch}\n              FILE が {arch.split('-')[0]} {arch.split('-')[1].upper()} "
        "ファイルであるかどうかをチェックします。\n\n"
        for arch in ARCHES
    )
    listing = "".join(f"{place}の不動産ファイルであるかどうかをチェックします。\n" for place in PLACES)
    slogan = "iPhone ケースのセール中です。今すぐチェックしてください。\n" * 12
    table = lookup_table(list(filters.items()))
    params = filters["char_repetition"]
    reference = Features(normalize_text(head + body), table)
    old = FILTERS["char_repetition"](reference, old_params("char_repetition", params))
    assert old is not None and old.startswith("char_repetition: repeated 10-grams")  # the old rule's verdict
    assert FILTERS["char_repetition"](reference, params) is None
    for name, rule_params in filters.items():  # every other rule keeps it too
        assert FILTERS[name](reference, rule_params) is None, name
    for noise in (listing, slogan, head + body + body):
        reason = FILTERS["char_repetition"](Features(normalize_text(noise), table), params)
        assert reason is not None and "outside entries naming their identifiers" in reason, reason


def test_keep_one_per_group_breaks_chains():
    """a ~ b and b ~ c but a is not like c: a bare union-find dropped b and c behind a; here c is
    kept, because nothing kept is like it, and every drop names a kept document it is like."""
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2**32, 128, dtype=np.uint32)
    b = a.copy()
    b[:32] = rng.integers(0, 2**32, 32, dtype=np.uint32)  # 75% like a
    c = b.copy()
    c[96:] = rng.integers(0, 2**32, 32, dtype=np.uint32)  # 75% like b, 50% like a
    d = c.copy()  # a copy of c
    sigs = {0: a, 1: b, 2: c, 3: d}
    verified = np.array([[1, 0], [2, 1], [3, 2]], dtype=np.int64)
    drops = keep_one_per_group(verified, sigs, 0.7)
    assert set(drops) == {1, 3}
    assert drops[1][0] == 0 and drops[3][0] == 2
    assert all(jaccard >= 0.7 for _, jaccard in drops.values())


def test_every_duplicate_group_keeps_one_copy(tmp_path):
    """Groups of exact and near copies, with copies that fail a filter and chains between groups:
    each group with a copy that passes the filters ends with exactly that many kept = 1."""
    base = [r["text"] for r in SAMPLE if len(r["text"]) > 600]
    records = []
    for g, text in enumerate(base):
        records.append({"id": f"g{g}-broken", "text": "<div>" * 400 + text})  # fails markup
        records.append({"id": f"g{g}-a", "text": text})
        records.append({"id": f"g{g}-exact", "text": text})
        records.append({"id": f"g{g}-near", "text": text.replace("。", "。\n", 3) + "\n出典: マニュアルより"})
    data = tmp_path / "in.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    clean([data], tmp_path / "out", progress=False, report=False)
    kept = {r["id"] for r in read_records(sorted((tmp_path / "out" / "kept").glob("*.jsonl*")))}
    for g in range(len(base)):
        assert [i for i in kept if i.startswith(f"g{g}-")] == [f"g{g}-a"]
