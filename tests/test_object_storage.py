"""Inputs on object storage: `jalm clean` and `jalm pack` read s3:// URLs (an object's prefix, a glob over
a crawl laid out like Common Crawl's) from a real S3-compatible server (moto's) started on a loopback port,
with 2 worker processes that open the objects themselves, and give exactly what they give for the same
files on local disk. Outputs on object storage are refused in one line."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
from pathlib import Path

import pytest

pytest.importorskip("s3fs")
moto_server = pytest.importorskip("moto.server")

from warcio.warcwriter import WARCWriter  # noqa: E402

from jalm.cli import main  # noqa: E402
from jalm.corpus.readers import read_jsonl  # noqa: E402
from jalm.errors import JalmError  # noqa: E402
from jalm.jsonl import read_records  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "data" / "corpus"
BUCKET = "jalm-crawl"
CRAWL = "crawl-data/CC-MAIN-2024-10/segments"
WETS = [
    f"{CRAWL}/1707947473347.0/wet/CC-MAIN-20240220211055-20240221001055-00000.warc.wet.gz",
    f"{CRAWL}/1707947473347.0/wet/CC-MAIN-20240220211055-20240221001055-00001.warc.wet.gz",
    f"{CRAWL}/1707947474871.1/wet/CC-MAIN-20240221002055-20240221032055-00000.warc.wet.gz",
]
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_wet(path: Path, pages: list[tuple[str, str]]) -> None:
    """A WET file as Common Crawl writes them: a warcinfo record, then one `conversion` record (the page's
    text, UTF-8) per page, each gzipped on its own."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        writer = WARCWriter(handle, gzip=True)
        writer.write_record(writer.create_warcinfo_record(path.name, {"software": "jalm test"}))
        for url, text in pages:
            record = writer.create_warc_record(
                url,
                "conversion",
                payload=io.BytesIO(text.encode("utf-8")),
                warc_content_type="text/plain",
            )
            writer.write_record(record)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """(local copy, s3 client, endpoint): the bucket holds the bundled corpus and 3 WET files under
    Common Crawl's paths, plus a hidden half-written object that must never be read."""
    import boto3

    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved = {key: os.environ.get(key) for key in [*FAKE_AWS, "AWS_ENDPOINT_URL"]}
    os.environ.update(FAKE_AWS)  # spawned workers inherit them
    local = tmp_path_factory.mktemp("local")
    for name in ("aozora.jsonl.zst", "wiki_jaquad.jsonl.zst"):
        (local / "corpus").mkdir(exist_ok=True)
        shutil.copy(CORPUS / name, local / "corpus" / name)
    from jalm.corpus.html import extract_main_text

    # pages not in the corpus: Aozora works as scanned, GIMP help pages' text (one is English); a copy
    # of a corpus article (a duplicate across the JSONL and the crawl) and a page too short to keep
    web = [r for r in read_records([ROOT / "data" / "noisy" / "web_raw.jsonl.zst"]) if r["kind"] != "roff"]
    texts = [extract_main_text(r["text"]) if r["kind"] == "html" else r["text"] for r in web]
    wiki = next(iter(read_records([CORPUS / "wiki_jaquad.jsonl.zst"])))["text"]
    pages = [(f"https://ja.example.jp/{i}.html", text) for i, text in enumerate(texts)]
    pages += [("https://copy.example.jp/0.html", wiki), ("https://short.example.jp/", "短い。")]
    for index, key in enumerate(WETS):
        write_wet(local / key, pages[index::3])
    import pyarrow as pa
    import pyarrow.parquet as pq

    # a Parquet file too: manual pages (rejected, not Japanese) and another copy of the corpus article
    roff = [
        r["text"]
        for r in read_records([ROOT / "data" / "noisy" / "web_raw.jsonl.zst"])
        if r["kind"] == "roff"
    ]
    rows = [{"text": text, "source": "parquet"} for text in [*roff, wiki]]
    pq.write_table(pa.Table.from_pylist(rows), local / "corpus" / "pages.parquet")
    client = boto3.client("s3", endpoint_url=endpoint)
    client.create_bucket(Bucket=BUCKET)
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        client.upload_file(str(path), BUCKET, path.relative_to(local).as_posix())
    client.put_object(Bucket=BUCKET, Key=f"{CRAWL}/1707947473347.0/wet/.tmp-99-x.warc.wet.gz", Body=b"half")
    try:
        yield local, client, endpoint
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _outputs(out: Path) -> tuple[dict, list[dict], list[dict]]:
    stats = json.loads((out / "stats.json").read_text(encoding="utf-8"))
    kept = list(read_records(sorted((out / "kept").glob("*.jsonl.zst"))))
    rejected = list(read_records(sorted((out / "rejected").glob("*.jsonl.zst"))))
    return stats, kept, rejected


def _decisions(stats: dict) -> dict:
    keys = ("input", "kept", "rejected", "rejected_total", "malformed", "non_documents", "records", "dedup")
    return {key: stats[key] for key in keys} | {"shards": [s["name"] for s in stats["shards"]]}


def _clean(*args: str) -> int:
    return main(["clean", *args, "--workers", "2", "--no-progress"])


def test_clean_and_pack_read_s3_as_they_read_local_disk(store, tokenizer_dir, tmp_path: Path, capsys) -> None:
    local, client, endpoint = store
    assert _clean(str(local), "--out", str(tmp_path / "local")) == 0
    want_stats, want_kept, want_rejected = _outputs(tmp_path / "local")
    assert want_stats["non_documents"] == {"warcinfo": 3}
    assert len(want_stats["shards"]) == 6  # 2 JSONL, 1 Parquet, 3 WET
    assert any(r.get("source") == "parquet" for r in want_rejected)
    assert want_stats["dedup"]["exact_duplicates"] + want_stats["dedup"]["near_duplicates"] >= 1  # the copy
    assert any(r.get("url") for r in want_kept), "the WET pages are kept with their URL"

    # a glob over the crawl's segments (endpoint from AWS_ENDPOINT_URL), plus the corpus prefix
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    try:
        glob = f"s3://{BUCKET}/{CRAWL}/*/wet/*.warc.wet.gz"
        assert _clean(f"s3://{BUCKET}/corpus/", glob, "--out", str(tmp_path / "glob")) == 0
    finally:
        del os.environ["AWS_ENDPOINT_URL"]
    # the whole bucket as a prefix (endpoint from --storage-option only)
    option = f"endpoint_url={endpoint}"
    try:
        assert _clean(f"s3://{BUCKET}", "--out", str(tmp_path / "prefix"), "--storage-option", option) == 0
    finally:
        os.environ.pop("JALM_STORAGE_OPTIONS", None)
    for run in ("glob", "prefix"):
        stats, kept, rejected = _outputs(tmp_path / run)
        assert _decisions(stats) == _decisions(want_stats), run
        assert [r["text"] for r in kept] == [r["text"] for r in want_kept], run
        assert kept == want_kept and rejected == want_rejected, run
        assert all(p.startswith(f"s3://{BUCKET}/") for s in stats["shards"] for p in s["paths"])

    # WET objects cut into byte ranges (--split-mb) are read as the same cuts of the local files are
    split = ["--split-mb", "0.008", "--storage-option", option]
    assert _clean(str(local / "crawl-data"), "--out", str(tmp_path / "split_local"), *split) == 0
    assert _clean(glob, "--out", str(tmp_path / "split_s3"), *split) == 0
    os.environ.pop("JALM_STORAGE_OPTIONS", None)
    (a_stats, a_kept, a_rejected), (b_stats, b_kept, b_rejected) = (
        _outputs(tmp_path / "split_local"),
        _outputs(tmp_path / "split_s3"),
    )
    assert len(a_stats["shards"]) > len(WETS), "the WET files were cut"
    assert [s.get("range") for s in b_stats["shards"]] == [s.get("range") for s in a_stats["shards"]]
    assert _decisions(b_stats) == _decisions(a_stats) and b_kept == a_kept and b_rejected == a_rejected
    assert a_stats["input"] == 10 and a_stats["non_documents"] == {"warcinfo": 3}

    # pack from an s3:// copy of kept/ equals packing the local kept/
    for path in sorted((tmp_path / "local" / "kept").iterdir()):
        client.upload_file(str(path), BUCKET, f"clean/kept/{path.name}")
    common = ["--tokenizer", str(tokenizer_dir), "--workers", "2", "--seq-len", "64", "--val-fraction", "0.1"]
    assert main(["pack", str(tmp_path / "local" / "kept"), "--out", str(tmp_path / "p_local"), *common]) == 0
    url = f"s3://{BUCKET}/clean/kept/"
    assert main(["pack", url, "--out", str(tmp_path / "p_s3"), "--storage-option", option, *common]) == 0
    os.environ.pop("JALM_STORAGE_OPTIONS", None)
    names = [url + p.name for p in sorted((tmp_path / "local" / "kept").iterdir())]
    _same_pack(tmp_path / "p_local", tmp_path / "p_s3", names)
    # a plain .jsonl object cut into byte ranges (--shard-mb) as the local file is
    plain = tmp_path / "plain" / "wiki.jsonl"
    plain.parent.mkdir()
    plain.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in want_kept), encoding="utf-8")
    client.upload_file(str(plain), BUCKET, "clean/plain/wiki.jsonl")
    common += ["--shard-mb", "2"]
    assert main(["pack", str(plain), "--out", str(tmp_path / "r_local"), *common]) == 0
    url = f"s3://{BUCKET}/clean/plain/wiki.jsonl"
    assert main(["pack", url, "--out", str(tmp_path / "r_s3"), "--storage-option", option, *common]) == 0
    os.environ.pop("JALM_STORAGE_OPTIONS", None)
    assert len(_same_pack(tmp_path / "r_local", tmp_path / "r_s3", [url])["shards"]) > 2


def _same_pack(local: Path, remote: Path, inputs: list[str]) -> dict:
    """Packs with the same meta.json (but for inputs and time) and byte-identical token files."""
    metas = [json.loads((p / "meta.json").read_text()) for p in (local, remote)]
    assert metas[1]["inputs"] == inputs
    for meta in metas:
        meta.pop("inputs"), meta.pop("seconds")
    assert metas[0] == metas[1] and metas[0]["train_documents"] > 0
    shards = sorted(p.name for p in (local / "shards").iterdir() if not p.name.endswith(".json"))
    assert shards
    for name in shards:
        assert (remote / "shards" / name).read_bytes() == (local / "shards" / name).read_bytes(), name
    return metas[0]


def test_outputs_on_object_storage_and_unfinished_inputs_are_one_line(store, tokenizer_dir, capsys) -> None:
    local, client, endpoint = store
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    try:
        assert _clean(f"s3://{BUCKET}/corpus/", "--out", f"s3://{BUCKET}/out") == 2
        assert "writes its outputs to a local or shared filesystem" in capsys.readouterr().err
        assert (
            main(["pack", f"s3://{BUCKET}/corpus/", "--tokenizer", str(tokenizer_dir), "--out", "s3://x/y"])
            == 2
        )
        assert "not to object storage" in capsys.readouterr().err
        assert _clean(f"s3://{BUCKET}/nothing-here/", "--out", "unused") == 2
        assert "no such object or prefix" in capsys.readouterr().err
        # an object that cannot be read (gone since it was listed): the run stops, nothing is quarantined
        with pytest.raises(JalmError, match="reading the object failed after line 0"):
            list(read_jsonl(f"s3://{BUCKET}/corpus/gone.jsonl.zst", "text"))
        # a kept/ uploaded from a clean run that did not complete (its marker beside it) is refused
        client.put_object(Bucket=BUCKET, Key="half/kept/a.jsonl", Body=b'{"text": "a"}\n')
        client.put_object(Bucket=BUCKET, Key="half/.jalm-incomplete", Body=b"jalm clean\n")
        for url in (
            f"s3://{BUCKET}/half/kept/",
            f"s3://{BUCKET}/half/kept/*.jsonl",
            f"s3://{BUCKET}/half/kept/a.jsonl",
        ):
            args = ["pack", url, "--tokenizer", str(tokenizer_dir), "--out", "unused"]
            assert main(args) == 2
            assert "did not complete" in capsys.readouterr().err, url
    finally:
        del os.environ["AWS_ENDPOINT_URL"]


def test_local_inputs_load_no_object_storage_package(tmp_path: Path) -> None:
    """Local runs are the code they were: neither fsspec nor botocore (nor torch) is imported."""
    import subprocess
    import sys

    code = (
        "import sys; from jalm.cli import main; "
        f"main(['clean', {str(CORPUS / 'aozora.jsonl.zst')!r}, '--out', {str(tmp_path / 'c')!r}, '--no-progress']); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('fsspec', 's3fs', 'botocore', 'torch')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
