"""The clean stage on real bundled text and on small fixtures: what is kept, rejected, quarantined."""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

import pytest

from jalm.corpus import CleanConfig, clean
from jalm.corpus import command as clean_command
from jalm.corpus.normalize import normalize_text
from jalm.jsonl import read_records

ROOT = Path(__file__).resolve().parents[1]
CORPUS = sorted((ROOT / "data" / "corpus").glob("*.jsonl.zst"))
NOISY = ROOT / "data" / "noisy" / "web_raw.jsonl.zst"
SYNTHETIC = ROOT / "tests" / "fixtures" / "clean" / "synthetic_noise.jsonl"


def read_dir(path: Path) -> list[dict]:
    return list(read_records(sorted(path.glob("*.jsonl*"))))


@pytest.fixture(scope="session")
def bundled_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("clean_bundled")
    stats = clean([*CORPUS, NOISY, SYNTHETIC], out, progress=False)
    return out, stats


def test_clean_corpus_is_kept_and_noise_rejected(bundled_run: tuple[Path, dict]) -> None:
    out, stats = bundled_run
    kept = read_dir(out / "kept")
    rejected = read_dir(out / "rejected")
    n_clean = sum(1 for _ in read_records(CORPUS))
    kept_clean = [r for r in kept if r["id"].startswith(("wiki_jaquad:", "aozora:"))]
    assert len(kept_clean) >= 0.98 * n_clean
    # Every synthetic noise document is rejected, each with a rule and its evidence.
    synthetic = [r for r in rejected if r.get("synthetic")]
    assert len(synthetic) == sum(1 for _ in read_records([SYNTHETIC]))
    assert not [r for r in kept if r.get("synthetic")]
    for record in rejected:
        rule, evidence = record["reason"].split(": ", 1)
        assert rule in stats["rejected"] and any(ch.isdigit() for ch in evidence)
    # Raw noisy documents never reach the kept shards as they were (markup, roff, raw HTML): HTML
    # pages are kept only as their extracted main text, the rest is rejected.
    for record in kept:
        assert "<html" not in record["text"] and '.\\"' not in record["text"] and "[#" not in record["text"]
    noisy = [r for r in kept if r["id"].startswith("web_raw:")]
    assert all(r["extracted_from"] == "html" and r["kind"] == "html" for r in noisy)
    assert stats["html_extracted"] >= 4


def test_stats_account_for_every_document(bundled_run: tuple[Path, dict]) -> None:
    out, stats = bundled_run
    assert stats == json.loads((out / "stats.json").read_text(encoding="utf-8"))
    n_input = sum(1 for _ in read_records([*CORPUS, NOISY, SYNTHETIC]))
    assert stats["input"] == n_input
    assert stats["kept"] == len(read_dir(out / "kept"))
    assert sum(stats["rejected"].values()) == len(read_dir(out / "rejected")) == stats["rejected_total"]
    assert stats["input"] == stats["kept"] + stats["rejected_total"] + stats["malformed"]
    b = stats["bytes"]
    assert b["input"] == b["kept"] + sum(b["rejected"].values())


def test_report_shows_each_rule_with_examples(bundled_run: tuple[Path, dict]) -> None:
    out, stats = bundled_run
    report = (out / "report.md").read_text(encoding="utf-8")
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for rule, count in stats["rejected"].items():
        assert f"| {rule} | {count} |" in report
        assert f"### {rule}" in report
        assert stats["examples"][rule][0]["id"] in report


def test_output_records_keep_fields_and_get_ids(bundled_run: tuple[Path, dict]) -> None:
    out, _ = bundled_run
    kept = read_dir(out / "kept")
    ids = [r["id"] for r in kept]
    assert len(ids) == len(set(ids))
    wiki = [r for r in kept if r["id"].startswith("wiki_jaquad:")]
    first = next(read_records([ROOT / "data" / "corpus" / "wiki_jaquad.jsonl.zst"]))
    assert wiki[0]["id"] == "wiki_jaquad:1"
    assert wiki[0]["title"] == first["title"] and wiki[0]["source"] == first["source"]
    assert wiki[0]["text"] == normalize_text(first["text"])
    # Inputs that already carry an id keep it.
    assert all(r["id"].startswith("synthetic-") for r in read_dir(out / "rejected") if r.get("synthetic"))


def test_normalisation_is_nfkc_for_the_lm_corpus() -> None:
    raw = "ＡＢＣ１２３！？（テスト）\u3000ｶﾀｶﾅｶﾞ…①㈱\r\n\r\n\r\n\r\n次の行\u200b  "
    assert normalize_text(raw) == "ABC123!?(テスト) カタカナガ...1(株)\n\n次の行"
    assert normalize_text("「こんにちは」、世界。") == "「こんにちは」、世界。"
    assert normalize_text("ｶﾀｶﾅ", "NFC") == "ｶﾀｶﾅ"


def test_fast_nfkc_equals_unicodedata() -> None:
    import unicodedata

    from jalm.corpus.normalize import nfkc

    samples = [
        "ｶﾞｷﾞｸﾞ ﾊﾟﾋﾟﾌﾟ ｳﾞ",  # half-width kana with voiced marks: combine after mapping
        "Ａ\u0301 ｅ\u0308 Å",  # full-width letters followed by combining accents
        "①②③ ㈱ ㌔ ﬁ ｰ～\u3000…‥",
        "が\u3099 は\u309a",  # already-voiced kana plus a combining voiced mark
        "𝐀𝐁𝐂 🄰 丽",  # mathematical letters, enclosed letters, CJK compatibility supplement
        "普通の日本語の文章です。" * 3,
    ]
    for text in samples + [good_text(i) for i in range(3)]:
        assert nfkc(text) == unicodedata.normalize("NFKC", text)


def test_repetition_statistics_match_a_direct_count() -> None:
    from collections import Counter

    from jalm.corpus.features import Features
    from jalm.corpus.repetition import duplicated_ngram_share, top_ngram_share

    texts = [good_text(i) for i in range(4)] + [r["text"] for r in read_records([SYNTHETIC])]
    for text in texts:
        features = Features(normalize_text(text))
        dense = "".join(features.text.split())
        for n in (2, 4, 10):
            grams = [dense[i : i + n] for i in range(len(dense) - n + 1)]
            counts = Counter(grams)
            covered = set()
            for i, gram in enumerate(grams):
                if counts[gram] > 1:
                    covered.update(range(i, i + n))
            hashes = features.ngram_hashes(n)
            assert duplicated_ngram_share(hashes, n, len(dense)) == pytest.approx(len(covered) / len(dense))
            top = max(counts.values()) * n / len(dense)
            assert top_ngram_share(hashes, n, len(dense)) == pytest.approx(top)
            # With a limit, the fast bound may be returned, but only when it is within the limit.
            bound = top_ngram_share(hashes, n, len(dense), limit=0.2)
            assert bound == pytest.approx(top) or (top <= bound <= 0.2)


def write_jsonl(path: Path, lines: list[bytes | str | dict]) -> Path:
    with open(path, "wb") as handle:
        for line in lines:
            if isinstance(line, dict):
                line = json.dumps(line, ensure_ascii=False)
            if isinstance(line, str):
                line = line.encode("utf-8")
            handle.write(line + b"\n")
    return path


def good_text(seed: int) -> str:
    """A real clean document from the bundled corpus (different `seed`, different text)."""
    for i, record in enumerate(read_records([CORPUS[-1]])):
        if i == seed:
            return record["text"]
    raise AssertionError(seed)


def test_malformed_lines_are_quarantined_and_the_run_goes_on(tmp_path: Path) -> None:
    src = write_jsonl(
        tmp_path / "mixed.jsonl",
        [
            {"text": good_text(0)},
            "{not json",
            b'{"text": "\xff\xfe broken utf-8"}',
            {"title": "no text field"},
            {"text": 42},
            "[1, 2, 3]",
            {"text": good_text(1)},
        ],
    )
    stats = clean([src], tmp_path / "out", progress=False, compress="none")
    assert stats["input"] == 7
    assert stats["kept"] == 2
    assert stats["malformed"] == 5
    quarantined = [json.loads(line) for line in (tmp_path / "out" / "quarantine" / "mixed.jsonl").open()]
    assert [q["line"] for q in quarantined] == ["2", "3", "4", "5", "6"]
    assert all(q["file"] == str(src.resolve()) for q in quarantined)
    assert "not valid JSON" in quarantined[0]["problem"]
    assert "UTF-8" in quarantined[1]["problem"]
    assert "no string field 'text'" in quarantined[2]["problem"]


def test_truncated_gzip_is_reported_not_raised(tmp_path: Path) -> None:
    full = gzip.compress("".join(json.dumps({"text": good_text(i)}) + "\n" for i in range(6)).encode())
    src = tmp_path / "cut.jsonl.gz"
    src.write_bytes(full[: len(full) * 2 // 3])
    stats = clean([src], tmp_path / "out", progress=False)
    assert stats["malformed"] == 1
    assert stats["input"] == stats["kept"] + stats["rejected_total"] + stats["malformed"]
    assert 0 < stats["kept"] < 6


def test_exact_duplicates_keep_one_copy(tmp_path: Path) -> None:
    text = good_text(2)
    a = write_jsonl(tmp_path / "a.jsonl", [{"text": text}, {"text": good_text(3)}])
    # Same text after normalisation (full-width digits, CRLF, trailing spaces) counts as the same.
    variant = text.replace("\n", "  \r\n").replace("1", "１")
    b = write_jsonl(tmp_path / "b.jsonl", [{"text": variant}, {"text": text}])
    stats = clean([a, b], tmp_path / "out", progress=False)
    assert stats["kept"] == 2
    assert stats["rejected"] == {"exact_duplicate": 2}
    rejected = read_dir(tmp_path / "out" / "rejected")
    assert {r["id"] for r in rejected} == {"b:1", "b:2"}
    assert all(r["reason"] == "exact_duplicate: same normalised text as a:1" for r in rejected)


def test_config_file_overrides_defaults(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "docs.jsonl", [{"text": good_text(4)}])
    config_path = tmp_path / "strict.toml"
    config_path.write_text("[filters.length]\nmin_chars = 1_000_000_000\n", encoding="utf-8")
    config = CleanConfig.load(config_path)
    assert (
        config.settings["filters"]["length"]["max_chars"]
        == CleanConfig().settings["filters"]["length"]["max_chars"]
    )
    stats = clean([src], tmp_path / "out", config=config, progress=False)
    assert stats["rejected"] == {"length": 1}
    assert stats["config"]["filters"]["length"]["min_chars"] == 1_000_000_000
    off = tmp_path / "off.json"
    off.write_text(
        json.dumps({"filters": {"length": {"enabled": False, "min_chars": 10**9}}}), encoding="utf-8"
    )
    assert clean([src], tmp_path / "out2", config=CleanConfig.load(off), progress=False)["kept"] == 1


def test_cli_prints_one_line_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="jalm")
    clean_command.register(parser.add_subparsers(dest="command"))
    src = write_jsonl(tmp_path / "docs.jsonl", [{"text": good_text(5)}, {"text": "short"}, "oops"])
    args = parser.parse_args(
        ["clean", str(src), "--out", str(tmp_path / "out"), "--no-progress", "--compress", "gz"]
    )
    assert args.func(args) == 0
    line = capsys.readouterr().out.strip()
    assert (
        line.startswith("clean: 3 docs")
        and "kept 1" in line
        and "length 1" in line
        and "quarantined 1" in line
    )
    assert (tmp_path / "out" / "kept" / "docs.jsonl.gz").exists()
