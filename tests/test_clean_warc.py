"""Web archives in: real pages packed into real WARC files (written with warcio) — Shift_JIS, EUC-JP,
ISO-2022-JP and UTF-8 pages, records that hold no document, a gzip member cut short in the middle
of the file and a record cut short at its end — then cleaned. Every record is accounted for, the
text is decoded right, the URL stays with the document, a block-listed domain is rejected, and a
file cut into byte ranges for 2 workers gives what 1 worker gives for the whole file."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from jalm.corpus import CleanConfig, clean
from jalm.corpus.encoding import decode_page
from jalm.corpus.html import extract_main_text
from jalm.corpus.normalize import normalize_text
from jalm.corpus.splits import jsonl_cuts, warc_cuts
from jalm.corpus.urlfilter import UrlFilter
from jalm.jsonl import read_records

ROOT = Path(__file__).resolve().parents[1]
WEB = ROOT / "data" / "noisy" / "web_raw.jsonl.zst"
WIKI = ROOT / "data" / "corpus" / "wiki_jaquad.jsonl.zst"
_DECLARATIONS = re.compile(r"<\?xml[^>]*\?>|<meta[^>]+charset[^>]*>", re.IGNORECASE)
TEMPLATE = (
    "<!DOCTYPE html><html lang='ja'><head>{meta}<title>{title}</title></head><body>"
    "<nav><a href='/'>ホーム</a> | <a href='/about'>会社概要</a></nav><main><h1>{title}</h1>{body}</main>"
    "<footer>Copyright 2024 Example</footer></body></html>"
)


def gimp_pages() -> list[str]:
    return [r["text"] for r in read_records([WEB]) if r.get("kind") == "html"]


def wiki_pages(n: int) -> list[tuple[str, str]]:
    out = []
    for record in read_records([WIKI]):
        paragraphs = "".join(f"<p>{p}</p>" for p in record["text"].split("\n") if p.strip())
        out.append((record["title"], paragraphs))
        if len(out) == n:
            break
    return out


def needle(page: str, codec: str) -> str:
    """A sentence of the page's main text that `codec` can write, as the pipeline writes it."""
    lines = [part for part in re.split("[\n。]", extract_main_text(page)) if len(part.strip()) > 15]
    for line in sorted(lines, key=len, reverse=True):
        try:
            line.encode(codec)
        except UnicodeEncodeError:
            continue
        if any(ord(c) > 0x3000 for c in line):
            return normalize_text(line.strip())
    raise AssertionError("no encodable sentence")


def response(writer: WARCWriter, url: str, body: bytes, content_type: str, status: str = "200 OK"):
    http = StatusAndHeaders(status, [("Content-Type", content_type)], protocol="HTTP/1.1")
    return writer.create_warc_record(url, "response", payload=io.BytesIO(body), http_headers=http)


def build_warc(path: Path) -> dict:
    """Write the test WARC (gzip per record); return what the test expects of it."""
    gimp = gimp_pages()
    title, paragraphs = wiki_pages(13)[12]
    # GIMP help pages 0, 1 and 3 are Japanese (page 2 is untranslated English); a Wikipedia article last
    pages = [gimp[0], gimp[1], gimp[3], TEMPLATE.format(meta="", title=title, body=paragraphs)]
    legacy = [
        # (url, codec, header charset, page declaration)
        ("https://sjis.example.jp/gimp0.html", "cp932", "Shift_JIS", None),
        ("https://euc.example.jp/gimp1.html", "euc_jp", None, "EUC-JP"),
        ("https://jis.example.jp/gimp3.html", "iso2022_jp", None, None),
        ("https://wrong-header.example.jp/wiki.html", "cp932", "ISO-8859-1", None),
    ]
    expected = {"needles": {}, "records": 0, "offsets": []}
    with open(path, "wb") as handle:
        writer = WARCWriter(handle, gzip=True)

        def write(record) -> None:
            expected["offsets"].append(handle.tell())
            writer.write_record(record)
            expected["records"] += 1

        write(writer.create_warcinfo_record(path.name, {"software": "jalm test", "format": "WARC 1.1"}))
        for page, (url, codec, header, declared) in zip(pages, legacy):
            html = _DECLARATIONS.sub("", page)
            if declared:
                html = html.replace("<head>", f'<head><meta charset="{declared}">', 1)
            body = html.encode(codec, errors="replace")
            content_type = "text/html" + (f"; charset={header}" if header else "")
            write(response(writer, url, body, content_type))
            expected["needles"][url] = (needle(page, codec), codec)
        for i, (title, paragraphs) in enumerate(wiki_pages(10)):
            url = f"https://{'blocked.example.com' if i == 3 else 'wiki.example.org'}/page{i}.html"
            html = TEMPLATE.format(meta='<meta charset="utf-8">', title=title, body=paragraphs)
            write(response(writer, url, html.encode("utf-8"), "text/html; charset=UTF-8"))
            request = writer.create_warc_record(
                url,
                "request",
                payload=io.BytesIO(b""),
                http_headers=StatusAndHeaders(
                    f"GET /page{i}.html HTTP/1.1", [("Host", "x")], is_http_request=True
                ),
            )
            write(request)
        write(
            response(
                writer, "https://wiki.example.org/logo.png", b"\x89PNG\r\n\x1a\n" + bytes(200), "image/png"
            )
        )
        write(
            response(
                writer,
                "https://wiki.example.org/gone.html",
                b"<html>gone</html>",
                "text/html",
                "404 Not Found",
            )
        )
        write(
            writer.create_warc_record(
                "https://wiki.example.org/", "metadata", payload=io.BytesIO(b"fetchTimeMs: 12")
            )
        )
        undecodable = b"<html><body><p>" + bytes([0x81, 0xFF]) * 300 + b"</p></body></html>"
        write(response(writer, "https://broken.example.jp/", undecodable, "text/html; charset=utf-8"))
        title, paragraphs = wiki_pages(12)[11]
        last = TEMPLATE.format(meta="", title=title, body=paragraphs).encode("utf-8")
        write(response(writer, "https://wiki.example.org/last.html", last, "text/html; charset=utf-8"))
    return expected


MIDDLE = 1 + 4 + 2 * 2  # warcinfo, 4 legacy pages, 2 × (wiki page + request): the 3rd wiki page


def damage(path: Path, offsets: list[int]) -> list[int]:
    """Cut the 3rd wiki page's gzip member in half (the file goes on after it) and the last record's
    member too (the file ends there); return the records' offsets in the damaged file."""
    data = path.read_bytes()
    start, end = offsets[MIDDLE], offsets[MIDDLE + 1]
    cut = end - start - (end - start) // 2
    data = data[: start + (end - start) // 2] + data[end:]
    moved = [o if i <= MIDDLE else o - cut for i, o in enumerate(offsets)]
    data = data[: moved[-1] + (len(data) - moved[-1]) // 2]
    path.write_bytes(data)
    return moved


def all_records(out: Path, sub: str) -> list[dict]:
    return list(read_records(sorted((out / sub).glob("*.jsonl*"))))


@pytest.fixture(scope="module")
def crawl(tmp_path_factory) -> tuple[Path, dict, Path]:
    folder = tmp_path_factory.mktemp("warc")
    path = folder / "crawl.warc.gz"
    expected = build_warc(path)
    expected["offsets"] = damage(path, expected["offsets"])
    block = folder / "block.txt"
    block.write_text("# test list\nblocked.example.com\n", encoding="utf-8")
    return path, expected, block


def config(block: Path, split_mb: float = 0) -> CleanConfig:
    return CleanConfig.load(
        overrides={"url_filter": {"block": [str(block)]}, "input": {"split_mb": split_mb}}
    )


def test_every_record_is_accounted_for_and_decoded(crawl, tmp_path: Path) -> None:
    path, expected, block = crawl
    out = tmp_path / "out"
    stats = clean([path], out, config=config(block), progress=False, compress="none")
    # 30 records written: the cut-short member in the middle costs its record (quarantined as
    # unreadable bytes), the last one is quarantined as cut short; nothing else is lost.
    assert stats["records"] == expected["records"] == 30
    counted = (
        stats["kept"] + stats["rejected_total"] + stats["malformed"] + sum(stats["non_documents"].values())
    )
    assert counted == expected["records"]
    assert stats["non_documents"] == {
        "warcinfo": 1,
        "request": 10,
        "response: image/png": 1,
        "response: HTTP 4xx": 1,
        "metadata": 1,
    }
    assert stats["malformed"] == 3
    assert set(stats["quarantined"]) == {
        "undecodable page",
        "truncated record",
        "unreadable WARC data in bytes N-N",
    }
    offsets = expected["offsets"]
    quarantine = [json.loads(line) for line in (out / "quarantine" / "crawl.jsonl").read_text().splitlines()]
    problems = {q["offset"]: q["problem"] for q in quarantine}
    # The unreadable bytes run from just after the last record read whole to the next record that
    # can be read; the undecodable page and the cut-short last record are where they start.
    lost = problems[str(offsets[MIDDLE - 1] + 1)]
    assert lost.startswith(f"unreadable WARC data in bytes {offsets[MIDDLE - 1] + 1}-{offsets[MIDDLE + 1]} (")
    assert problems[str(offsets[-2])].startswith("undecodable page (header utf-8")
    assert problems[str(offsets[-1])].startswith("truncated record (")
    documents = all_records(out, "kept") + all_records(out, "rejected")
    by_url = {r["url"]: r for r in documents}
    assert len(documents) == stats["kept"] + stats["rejected_total"] == 4 + 10 - 1
    # Every legacy page decoded to its real text, whatever declared (or misdeclared) its charset.
    for url, (sentence, codec) in expected["needles"].items():
        record = by_url[url]
        assert sentence in record["text"], url
        assert record["encoding"].startswith(codec if codec != "iso2022_jp" else "iso2022_jp"), record[
            "encoding"
        ]
        assert not re.search("[\u0080-\u00ff]{2}|[\uff61-\uff9f]{3}", record["text"]), url  # no mojibake
    assert by_url["https://sjis.example.jp/gimp0.html"]["encoding"] == "cp932 (header)"
    assert by_url["https://euc.example.jp/gimp1.html"]["encoding"] == "euc_jp (meta)"
    assert by_url["https://jis.example.jp/gimp3.html"]["encoding"].endswith("(detected)")
    assert by_url["https://wrong-header.example.jp/wiki.html"]["encoding"] == "cp932 (detected)"
    # URL, crawl date and record id travel with the document into the output.
    kept = all_records(out, "kept")
    assert len([r for r in kept if r["url"].startswith("https://wiki.example.org/page")]) >= 5
    assert all(
        re.match(r"\d{4}-\d\d-\d\dT", r["date"]) and r["warc_record_id"].startswith("<urn:uuid:")
        for r in kept
    )
    assert all(int(r["id"].removeprefix("crawl:")) in offsets for r in kept)  # id = file:record offset
    # The block-listed domain is rejected before extraction, with the list entry as evidence.
    blocked = by_url["https://blocked.example.com/page3.html"]
    assert blocked["reason"] == "url_filter: blocked by domain blocked.example.com (block.txt:2)"
    assert stats["rejected"]["url_filter"] == 1
    assert "Web archive records that hold no document (30 records" in (out / "report.md").read_text(
        encoding="utf-8"
    )


def _outputs(out: Path) -> tuple[list[dict], list[dict], list[str]]:
    kept = all_records(out, "kept")
    rejected = sorted(all_records(out, "rejected"), key=lambda r: r["id"])
    quarantine = sorted(
        line for f in (out / "quarantine").glob("*.jsonl") for line in f.read_text().splitlines()
    )
    return kept, rejected, quarantine


def test_warc_split_across_two_workers_equals_one_worker(crawl, tmp_path: Path) -> None:
    path, _, block = crawl
    whole = clean([path], tmp_path / "one", config=config(block), progress=False, compress="none")
    assert len(warc_cuts(path, 20_000)) >= 3  # the damaged file still cuts at whole records
    split = clean(
        [path], tmp_path / "two", config=config(block, 0.02), workers=2, progress=False, compress="none"
    )
    assert len(split["shards"]) >= 3 and all("range" in s for s in split["shards"])
    assert _outputs(tmp_path / "one") == _outputs(tmp_path / "two")
    for key in ("records", "input", "kept", "rejected", "malformed", "quarantined", "non_documents"):
        assert split[key] == whole[key], key


def test_resume_redoes_only_the_missing_range(crawl, tmp_path: Path) -> None:
    path, _, block = crawl
    out = tmp_path / "out"
    cfg = config(block, 0.02)
    first = clean([path], out, config=cfg, progress=False, compress="none")
    before = _outputs(out)
    victim = first["shards"][1]["name"]
    # As if killed while range 1 was being written: its markers and outputs gone, no stats.json.
    for gone in [
        out / "stats.json",
        out / ".work" / "pass1" / f"{victim}.json",
        out / ".work" / "pass3" / f"{victim}.json",
    ]:
        gone.unlink()
    for sub in ("kept", "rejected"):
        for f in (out / sub).glob(f"{victim}.*"):
            f.unlink()
    again = clean([path], out, config=cfg, progress=False, compress="none")
    assert _outputs(out) == before
    redone = {s["name"] for s in again["shards"] if s["name"] == victim}
    assert redone == {victim} and again["kept"] == first["kept"] and again["records"] == first["records"]


def test_jsonl_split_gives_the_same_documents(tmp_path: Path) -> None:
    records = list(read_records([WIKI]))[:60]
    path = tmp_path / "big.jsonl"
    with open(path, "w", encoding="utf-8") as handle:
        for i, record in enumerate(records):
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            if i == 10:
                handle.write("{not json\n\n")  # a bad line and a blank one, across a cut or not
    size = path.stat().st_size
    cuts = jsonl_cuts(path, size // 3)
    assert len(cuts) == 3 and all(path.read_bytes()[c - 1 : c] == b"\n" for c in cuts[1:])
    runs = {}
    for name, split_mb, workers in (
        ("whole", 0, 1),
        ("three", size / 3 / 1e6, 2),
        ("two", size / 2 / 1e6, 1),
    ):
        cfg = CleanConfig.load(overrides={"input": {"split_mb": split_mb}})
        runs[name] = clean(
            [path], tmp_path / name, config=cfg, workers=workers, progress=False, compress="none"
        )
    assert len(runs["three"]["shards"]) == 3 and len(runs["two"]["shards"]) == 2
    three, two, whole = (_outputs(tmp_path / n) for n in ("three", "two", "whole"))
    assert three[:2] == two[:2]  # ids are byte offsets: the same whatever the cuts
    assert [r["text"] for r in three[0]] == [r["text"] for r in whole[0]]
    assert runs["three"]["malformed"] == runs["whole"]["malformed"] == 1
    assert runs["three"]["kept"] == runs["whole"]["kept"]


def test_decoding_falls_through_a_wrong_charset_and_reports_the_undecodable() -> None:
    text = "日本語のページです。文字コードが正しく判定されることを確かめます。" * 3
    for codec in ("cp932", "euc_jp", "iso2022_jp"):
        body = f"<html><body><p>{text}</p></body></html>".encode(codec)
        for header in (None, "ISO-8859-1", "utf-8"):
            decoded = decode_page(body, header)
            assert text in decoded.text, (codec, header, decoded)
    # A header naming Shift_JIS for EUC-JP bytes: cp932 reads them as half-width kana; not accepted.
    decoded = decode_page(f"<p>{text}</p>".encode("euc_jp"), "Shift_JIS")
    assert text in decoded.text and decoded.encoding == "euc_jp"
    bad = decode_page(b"<p>" + bytes([0x81, 0xFF]) * 50, "utf-8")
    assert bad.text is None and bad.problem.startswith("undecodable page (header utf-8, tried ")


def test_url_lists(tmp_path: Path) -> None:
    block = tmp_path / "block.txt"
    block.write_text("ads.example.com\n*://example.org/private/*\nre:[?&]sessionid=\n", encoding="utf-8")
    allow = tmp_path / "allow.txt"
    allow.write_text("news.ads.example.com\n", encoding="utf-8")
    urls = UrlFilter([str(block)], [str(allow)])
    assert (
        urls.check("https://x.ads.example.com/a")
        == "url_filter: blocked by domain ads.example.com (block.txt:1)"
    )
    assert urls.check("https://news.ads.example.com/a") is None  # the allow list holds exceptions
    assert urls.check("https://example.org/private/1").startswith(
        "url_filter: blocked by pattern *://example.org"
    )
    assert urls.check("https://example.org/p?a=1&sessionid=9").endswith("(block.txt:3)")
    assert (
        urls.check("https://notads.example.com/") is None and urls.check("https://example.org/public") is None
    )
    only = UrlFilter([str(_write(tmp_path / "all.txt", "*\n"))], [str(allow)])
    assert only.check("https://elsewhere.jp/") and only.check("https://news.ads.example.com/x") is None


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_arc_file(tmp_path: Path) -> None:
    """An ARC file (the format before WARC), per-record gzip, read through warcio."""
    import gzip

    def arc_record(header: str, body: bytes) -> bytes:
        return gzip.compress(f"{header} {len(body)}\n".encode() + body + b"\n")

    page = gimp_pages()[0]
    html = _DECLARATIONS.sub("", page).encode("euc_jp", errors="replace")
    data = arc_record(
        "filedesc://t.arc 0.0.0.0 20240101000000 text/plain",
        b"1 0 jalm\nURL IP-address Archive-date Content-type Archive-length\n",
    )
    data += arc_record(
        "http://example.jp/a.html 192.0.2.1 20240102030405 text/html",
        b"HTTP/1.0 200 OK\r\nContent-Type: text/html; charset=EUC-JP\r\n\r\n" + html,
    )
    (tmp_path / "old.arc.gz").write_bytes(data)
    stats = clean([tmp_path / "old.arc.gz"], tmp_path / "out", progress=False, compress="none")
    assert stats["records"] == 2 and stats["non_documents"] == {"warcinfo": 1} and stats["input"] == 1
    (record,) = all_records(tmp_path / "out", "kept") + all_records(tmp_path / "out", "rejected")
    assert record["url"] == "http://example.jp/a.html" and record["date"] == "2024-01-02T03:04:05Z"
    assert needle(page, "euc_jp") in record["text"]


def test_extractors_are_selectable(tmp_path: Path) -> None:
    page = gimp_pages()[0]
    sentence = " ".join(needle(page, "utf-8").split())
    for extractor in ("resiliparse", "trafilatura"):
        text = normalize_text(extract_main_text(page, extractor=extractor))
        assert sentence in " ".join(text.split())  # trafilatura keeps the page's line breaks in a <p>
    with pytest.raises(Exception, match="unknown HTML extractor"):
        CleanConfig.load(overrides={"html": {"extractor": "lynx"}})


def test_resiliparse_full_keeps_the_list_items_main_content_drops() -> None:
    """resiliparse's main-content heuristic drops the list items of this manual page (and keeps its
    header); `resiliparse-full` keeps every block of prose and drops nav, header and footer
    (benchmarks/html_prose.py measures both on real help pages)."""
    note = "この操作は元に戻せないので、先に画像を保存しておくことをお勧めします。"
    item = "レイヤーダイアログの右クリックメニューからも同じコマンドを選べます。"
    prose = "このコマンドは活性レイヤーのアルファチャンネルをもとに選択範囲を作成します。" * 6
    page = (
        "<html><head><title>t</title></head><body>"
        "<nav><a href='a.html'>前へ</a> <a href='b.html'>次へ</a> ナビゲーションの案内です。</nav>"
        "<header>GIMP ユーザーマニュアルのヘッダーです。</header>"
        f"<div class='sect1'><h2>7.42. 選択範囲との交わり</h2><p>{prose}</p>"
        f"<div class='note'><h3>注記</h3><p>{note}</p></div>"
        f"<ul><li>{item}</li><li>キーボードショートカットはありません。</li></ul></div>"
        "<footer>このページのフッターです。</footer></body></html>"
    )
    assert item not in " ".join(extract_main_text(page).split())
    full = " ".join(extract_main_text(page, extractor="resiliparse-full").split())
    assert note in full and item in full and prose[:40] in full
    assert "ナビゲーション" not in full and "ヘッダー" not in full and "フッター" not in full
    assert CleanConfig.load(overrides={"html": {"extractor": "resiliparse-full"}})
