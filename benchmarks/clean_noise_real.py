"""The MEASURING noise of the clean-stage quality benchmarks: real documents that do not belong in a
Japanese corpus, from sources the rules were never tuned on, fixed before any tuning.

    .venv/bin/python benchmarks/clean_noise_real.py      # writes runs/bench_clean/noise_measure/

The synthetic noise (clean_quality_noise.py, jalm.experiment.noise) is for tuning; this set is for
measuring. Its sources share nothing with the generator's templates or the keyword lists:
- english: pages of the Japanese manual packages that were never translated (under 5% Japanese
  letters; measuring half of techja_set.py's split only: man pages, Debian Policy chapters, KiCad
  sections, the jLHA API pages), and the English help pages of
  shared/data/noisy/web_raw.jsonl that are not in the bundled data/, reduced to their main text;
- chinese: Chinese man pages (manpages-zh, GFDL-1.2+; zh_CN and zh_TW), rendered like the Japanese ones;
- markup: the roff SOURCE of the Japanese man pages of the measuring half (the same pages are clean
  once rendered), and the raw Aozora Bunko files with their ruby and annotation markup from
  shared/data/noisy/web_raw.jsonl that are not in the bundled data/;
- word_list: blocks of 40 entries of the SKK dictionary (skkdic, GPL-2+): readings and their kanji;
- code: Python source files with Japanese comments and docstrings (HojiChar 0.18.1, Apache-2.0,
  installed for the benchmarks), and a fixed sample of Python's own library (PSF-2.0);
- near_duplicate: sections of the Debian Edu bullseye manual whose bookworm version is in the
  measuring half of techja_set.py (real revisions of one text; placed after the originals).
There is no real, licensed source of spam, ads, adult pages or BBS threads here: those categories
exist only in the synthetic (tuning) noise, and this benchmark says so.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from techja_set import DEBS, ROOT, download, html_sections, render_man, split_of, unpack  # noqa: E402

OUT = ROOT / "runs" / "bench_clean" / "noise_measure"
SHARED = ROOT.parent / "shared" / "data"
N = {"english": 150, "chinese": 150, "markup": 150, "word_list": 100, "code": 100, "near_duplicate": 150}


def _pick(items: list, n: int, key=lambda item: item) -> list:
    """A fixed sample: the n items with the smallest sha256 of their key."""
    return sorted(items, key=lambda item: hashlib.sha256(str(key(item)).encode("utf-8")).hexdigest())[:n]


def _japanese_share(text: str) -> float:
    dense = re.sub(r"\s+", "", text)
    japanese = len(re.findall(r"[\u3041-\u30ff\u4e00-\u9fff]", dense))
    return japanese / max(len(dense), 1)


def _record(category: str, source: str, text: str, license: str) -> dict:
    return {
        "id": f"real-{category}-{hashlib.sha256(source.encode()).hexdigest()[:12]}",
        "text": text,
        "label": "noise",
        "category": category,
        "source": source,
        "license": license,
    }


def build(debs: Path = DEBS, out: Path = OUT) -> list[Path]:
    sys.path.insert(0, str(ROOT / "src"))
    from jalm.corpus.html import extract_main_text

    files = download(debs)
    extra = {}
    for name in ("manpages-zh", "skkdic"):
        import subprocess

        debs.mkdir(parents=True, exist_ok=True)
        if not sorted(debs.glob(f"{name}_*.deb")):
            subprocess.run(["apt-get", "download", name], cwd=debs, check=True)
        extra[name] = unpack(sorted(debs.glob(f"{name}_*.deb"))[-1], debs / "x" / name)
    records: dict[str, list[dict]] = {category: [] for category in N}

    # Japanese man pages of the measuring half: untranslated ones are English; the roff source is markup.
    man_sources = []
    for package in ("manpages-ja", "manpages-ja-dev"):
        root = unpack(files[package], debs / "x" / package)
        for path in sorted((root / "usr/share/man/ja").glob("man*/*.gz")):
            name = f"{path.parent.name}/{path.name[:-3]}"
            if split_of(f"{package}:{name}") != "measure":
                continue
            source = gzip.decompress(path.read_bytes()).decode("utf-8", errors="replace")
            if re.match(r"\s*\.so\s", source) and source.count("\n") <= 2:
                continue
            man_sources.append((f"debian:{package} {name}", source))
    english = []
    for source, roff in _pick(man_sources, 600, key=lambda item: item[0]):
        text = render_man(roff)
        if len(text) >= 300 and _japanese_share(text) < 0.05:
            english.append(_record("english", source, text, "licence of the original man page"))
    bundled = _bundled_sources()
    web = [json.loads(line) for line in open(SHARED / "noisy" / "web_raw.jsonl", encoding="utf-8")]
    for record in web:
        if record["source"] in bundled:
            continue
        if record["kind"] == "html":
            text = extract_main_text(record["text"]) or ""
            if len(text) >= 300 and _japanese_share(text) < 0.05:
                english.append(_record("english", record["source"], text, record["license"]))
        elif record["kind"] == "aozora_raw":
            records["markup"].append(_record("markup", record["source"], record["text"], record["license"]))
    from techja_set import html_docs

    for package in ("debian-policy-ja", "kicad-doc-ja", "libjlha-java-doc-ja"):
        root = unpack(files[package], debs / "x" / package)
        for doc in html_docs(root, package, files[package].name.split("_")[1]):
            text = doc["text"]
            if split_of(doc["id"]) == "measure" and len(text) >= 300 and _japanese_share(text) < 0.05:
                english.append(_record("english", doc["source"], text, doc["license"]))
    records["english"] = _pick(english, N["english"], key=lambda r: r["source"])
    for source, roff in _pick(
        man_sources, N["markup"] - len(records["markup"]), key=lambda item: "roff" + item[0]
    ):
        if _japanese_share(roff) >= 0.05:
            records["markup"].append(
                _record("markup", source + " (roff source)", roff, "licence of the original man page")
            )

    zh = sorted((extra["manpages-zh"] / "usr/share/man").glob("zh_*/man*/*.gz"))
    for path in _pick(zh, N["chinese"] * 2, key=lambda p: p.name + p.parent.parent.name):
        roff = gzip.decompress(path.read_bytes()).decode("utf-8", errors="replace")
        if re.match(r"\s*\.so\s", roff):
            continue
        text = render_man(roff)
        if len(text) >= 300 and len(records["chinese"]) < N["chinese"]:
            source = f"debian:manpages-zh {path.relative_to(extra['manpages-zh'])}"
            records["chinese"].append(_record("chinese", source, text, "GFDL-1.2+"))

    skk = (extra["skkdic"] / "usr/share/skk/SKK-JISYO.L").read_bytes().decode("euc-jp", errors="replace")
    entries = [line for line in skk.split("\n") if line and not line.startswith(";")]
    blocks = [(i, entries[i : i + 40]) for i in range(0, len(entries) - 40, 40)]
    for i, block in _pick(blocks, N["word_list"], key=lambda item: item[0]):
        records["word_list"].append(
            _record(
                "word_list", f"debian:skkdic SKK-JISYO.L entries {i}-{i + 39}", "\n".join(block), "GPL-2+"
            )
        )

    try:
        import hojichar

        code_files = sorted(Path(hojichar.__file__).parent.rglob("*.py"))
    except ImportError:
        code_files = []
    code = []
    for path in code_files:
        text = path.read_text(encoding="utf-8")
        if re.search(r"[\u3041-\u30ff]", text) and len(text) >= 300:
            code.append(_record("code", f"hojichar 0.18.1 {path.name}", text, "Apache-2.0"))
    stdlib = sorted(Path(argparse.__file__).parent.glob("*.py"))  # Python's own library (PSF licence)
    for path in _pick(stdlib, N["code"] - len(code), key=lambda p: p.name):
        text = path.read_text(encoding="utf-8", errors="replace")
        code.append(
            _record(
                "code", f"python {sys.version_info[0]}.{sys.version_info[1]} {path.name}", text, "PSF-2.0"
            )
        )
    records["code"] = _pick(code, N["code"], key=lambda r: r["source"])

    edu = unpack(files["debian-edu-doc-ja"], debs / "x" / "debian-edu-doc-ja")
    bullseye = sorted(edu.rglob("debian-edu-bullseye-manual.html"))
    bookworm = sorted(edu.rglob("debian-edu-bookworm-manual.html"))
    if bullseye and bookworm:
        measured = {}
        for i, (title, _) in enumerate(html_sections(bookworm[0].read_text(encoding="utf-8"))):
            doc_id = f"debian-edu-doc-ja:{bookworm[0].name}#{i:03d} {title}"
            if split_of(doc_id) == "measure":
                measured[title] = doc_id
        for title, part in html_sections(bullseye[0].read_text(encoding="utf-8")):
            text = extract_main_text(part) or ""
            if (
                title in measured
                and len(text) >= 300
                and len(records["near_duplicate"]) < N["near_duplicate"]
            ):
                source = f"debian:debian-edu-doc-ja bullseye manual: {title}"
                record = _record("near_duplicate", source, text, "GPL-2+")
                record["copy_of"] = measured[title]  # the id of the bookworm section
                records["near_duplicate"].append(record)

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for category, items in records.items():
        path = out / f"{category}.jsonl"
        with open(path, "w", encoding="utf-8") as handle:
            for record in items:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        paths.append(path)
    counts = {category: len(items) for category, items in records.items()}
    (out / "manifest.json").write_text(json.dumps(counts, indent=1) + "\n", encoding="utf-8")
    return paths


def _bundled_sources() -> set[str]:
    """The sources of the records in the bundled data/noisy (the defaults were set on them)."""
    from jalm.jsonl import read_records

    return {r.get("source") for r in read_records([ROOT / "data" / "noisy" / "web_raw.jsonl.zst"])}


if __name__ == "__main__":
    build()
    print((OUT / "manifest.json").read_text(encoding="utf-8"))
