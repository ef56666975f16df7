"""A labelled set of real technical Japanese (software manuals and man pages), rebuilt from Debian
packages, split once into a tuning part and a measuring part.

    .venv/bin/python benchmarks/techja_set.py [--debs DIR]    # writes runs/bench_clean/techja/

Sources (each record keeps its package, version, path and licence):
- manpages-ja, manpages-ja-dev: the JM Project's translated man pages (licence of each original
  page, named in its roff comments; DFSG-free), rendered with groff to UTF-8 text, left-adjusted,
  without the running header and footer lines;
- debian-policy-ja (GPL-2+): the Debian Policy Manual, one document per HTML chapter;
- kicad-doc-ja (GPL-3+ / CC-BY-3.0): the KiCad manuals, one document per <h2> section;
- debian-edu-doc-ja (GPL-2+): the Debian Edu bookworm manual, one document per <h2> section (the
  bullseye manual in the same package is a near copy of it and is left out);
- libjlha-java-doc-ja (BSD-style, see its copyright file): the Japanese API documentation;
- aptitude-doc-ja (GPL-2+), gimp-help-ja (GFDL-1.2+), libreoffice-help-ja (MPL-2.0): help pages
  (all of aptitude's, a fixed sample of 200 of each of the others), none of the pages in
  shared/data/noisy/web_raw.jsonl.
HTML goes through jalm's own extractor (trafilatura), the one `jalm clean` uses on HTML input.

Not used, ever: debian-reference-ja, developers-reference-ja, maint-guide-ja, debian-faq-ja
(reserved for independent evaluation). Left out because the defaults were set on them: the pages
already in the bundled data/noisy (bash, grep, ls, tar, crontab, mount, KiCad getting started).

Labelling rule (fixed before any rule of jalm was tuned, and independent of jalm's filters): a
document is clean technical Japanese when it has at least 200 non-space characters and Japanese
letters (hiragana, katakana, kanji) make up at least 20% of them; pages below that are untranslated
or nearly so (left out, counted). Exact copies (same text after white space is squeezed, e.g.
aclocal.1 and aclocal-1.16.1) are kept once.

Split (`--split document`, the first set): by the first 8 hex digits of sha256(document id): even →
tune, odd → measure. Pages of one family (the isw* man pages) fell on both sides, and the measuring part
was looked at before the last round of tuning: its figure is not a held-out one.

Split `--split package` (2026-12-08, written to runs/bench_clean/techja_by_package/): whole Debian
packages on one side, so no family is on both: MEASURE_PACKAGES measure, the others tune. The measuring
part's sha256 goes into manifest.json and benchmarks/README.md before it is measured, once.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "runs" / "bench_clean" / "techja"
DEBS = ROOT / "runs" / "bench_clean" / "debs"
PACKAGES = {
    "manpages-ja": "see each page's roff comments (licence of the original page); JM Project translation",
    "manpages-ja-dev": "see each page's roff comments (licence of the original page); JM Project translation",
    "debian-policy-ja": "GPL-2+",
    "kicad-doc-ja": "GPL-3+ / CC-BY-3.0 (KiCad documentation)",
    "debian-edu-doc-ja": "GPL-2+",
    "libjlha-java-doc-ja": "BSD-style (Michel Ishizuka; see the package's copyright file)",
    "aptitude-doc-ja": "GPL-2+",
    "gimp-help-ja": "GFDL-1.2+ (no invariant sections)",
    "libreoffice-help-ja": "MPL-2.0",
}
# Help systems of thousands of pages: a fixed sample (the pages with the smallest sha256 of path).
SAMPLE = {"gimp-help-ja": 200, "libreoffice-help-ja": 200}
RESERVED = {"debian-reference-ja", "developers-reference-ja", "maint-guide-ja", "debian-faq-ja"}
IN_BUNDLED_DATA = {
    "man1/bash.1",
    "man1/grep.1",
    "man1/ls.1",
    "man1/tar.1",
    "man5/crontab.5",
    "man8/mount.8",
    "getting_started_in_kicad.html",
}  # and every page of shared/data/noisy/web_raw.jsonl (read at build time)
# --split package: these packages measure, the others tune (chosen by what they hold, before measuring:
# one man-page package, one HTML manual, one help system and one API reference)
MEASURE_PACKAGES = {"manpages-ja-dev", "kicad-doc-ja", "libreoffice-help-ja", "libjlha-java-doc-ja"}
MIN_CHARS = 200
MIN_JAPANESE = 0.2


def download(debs: Path) -> dict[str, Path]:
    """The packages' .deb files in `debs` (fetched with `apt-get download` when missing)."""
    assert not RESERVED & set(PACKAGES)
    debs.mkdir(parents=True, exist_ok=True)
    found = {}
    for name in PACKAGES:
        matches = sorted(debs.glob(f"{name}_*.deb"))
        if not matches:
            subprocess.run(["apt-get", "download", name], cwd=debs, check=True)
            matches = sorted(debs.glob(f"{name}_*.deb"))
        found[name] = matches[-1]
    return found


def unpack(deb: Path, into: Path) -> Path:
    if not into.exists():
        into.mkdir(parents=True)
        subprocess.run(["dpkg-deb", "-x", str(deb), str(into)], check=True)
    return into


def render_man(source: str) -> str:
    """A man page as the reader sees it: groff, UTF-8, left-adjusted (no justification spaces), no
    hyphenation, one continuous page, header and footer lines removed."""
    source = re.sub(r"(?m)^\.ad.*$", ".ad l", source)
    source = re.sub(r"(?m)^(\.TH .*)$", r"\1\n.ad l", source)
    result = subprocess.run(
        ["groff", "-k", "-Tutf8", "-mandoc", "-rLL=100n", "-rHY=0", "-rcR=1", "-P-cbou"],
        input=source.encode("utf-8"),
        capture_output=True,
        check=False,
    )
    lines = result.stdout.decode("utf-8", errors="replace").split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    if len(lines) > 2:
        lines = lines[1:-1]  # the running header (NAME(1) ... NAME(1)) and footer (source, date)
    return "\n".join(line.rstrip() for line in lines).strip("\n")


def man_pages(root: Path, package: str, version: str) -> list[dict]:
    docs = []
    for path in sorted((root / "usr/share/man/ja").glob("man*/*.gz")):
        source = gzip.decompress(path.read_bytes()).decode("utf-8", errors="replace")
        if re.match(r"\s*\.so\s", source) and source.count("\n") <= 2:
            continue  # a link to another page
        name = f"{path.parent.name}/{path.name[:-3]}"
        docs.append(_doc(package, version, name, render_man(source)))
    return docs


def html_sections(html: str, tag: str = "h2") -> list[tuple[str, str]]:
    """(title, HTML) of each part of a one-page manual that starts at a `tag` heading."""
    parts = re.split(rf"(?i)(?=<{tag}[\s>])", html)
    out = []
    for part in parts[1:]:
        title = re.sub(r"<[^>]+>", "", part[: part.lower().find(f"</{tag}>")]).strip()
        out.append((title, f"<html><body><div>{part}</div></body></html>"))
    return out


def html_docs(root: Path, package: str, version: str) -> list[dict]:
    from jalm.corpus.html import extract_main_text

    docs = []
    if package == "debian-policy-ja":
        pages = sorted((root / "usr/share/doc/debian-policy/ja/policy.html").glob("*.html"))
        pages = [p for p in pages if p.name not in {"genindex.html", "search.html", "index.html"}]
        items = [(p.name, p.read_text(encoding="utf-8")) for p in pages]
    elif package == "libjlha-java-doc-ja":
        pages = sorted((root / "usr/share/doc").rglob("*.html"))
        skip = ("index", "allclasses", "overview", "package-list", "package-frame", "help-doc", "deprecated")
        items = [(str(p.relative_to(root)), p.read_text(encoding="utf-8", errors="replace")) for p in pages]
        items = [(n, h) for n, h in items if not Path(n).name.startswith(skip)]
    elif package in ("aptitude-doc-ja", "gimp-help-ja", "libreoffice-help-ja"):
        pages = sorted(root.rglob("*.html"))
        if package in SAMPLE:
            pages = sorted(pages, key=lambda p: hashlib.sha256(str(p.relative_to(root)).encode()).hexdigest())
            pages = sorted(pages[: SAMPLE[package]])
        items = [
            ("/" + str(p.relative_to(root)), p.read_text(encoding="utf-8", errors="replace")) for p in pages
        ]
    else:
        if package == "kicad-doc-ja":
            pages = sorted((root / "usr/share/doc/kicad/help/ja").glob("*.html"))
        else:
            pages = sorted(root.rglob("debian-edu-bookworm-manual.html"))
        items = []
        for page in pages:
            for i, (title, part) in enumerate(html_sections(page.read_text(encoding="utf-8"))):
                items.append((f"{page.name}#{i:03d} {title}", part))
    shared = _shared_pages()
    for name, html in items:
        if name in IN_BUNDLED_DATA or name.split("#")[0] in IN_BUNDLED_DATA or name in shared:
            continue
        docs.append(_doc(package, version, name, extract_main_text(html) or ""))
    return docs


def _shared_pages() -> set[str]:
    """Paths of the pages in shared/data/noisy/web_raw.jsonl (the source of data/noisy and of the
    older labelled set's help pages): never in this set."""
    shared = os.environ.get("JALM_SHARED_DATA") or ROOT.parent / "shared" / "data"
    path = Path(shared) / "noisy" / "web_raw.jsonl"
    if not path.exists():
        return set()
    with open(path, encoding="utf-8") as handle:
        return {json.loads(line)["source"].split(" ", 1)[-1] for line in handle if line.strip()}


def _doc(package: str, version: str, name: str, text: str) -> dict:
    return {
        "id": f"{package}:{name}",
        "text": text,
        "source": f"debian:{package} {version} {name}",
        "license": PACKAGES[package],
    }


def split_of(doc_id: str, by: str = "document") -> str:
    """tune or measure, fixed by the id alone (by its package with `by="package"`)."""
    if by == "package":
        return "measure" if doc_id.split(":", 1)[0] in MEASURE_PACKAGES else "tune"
    return "tune" if int(hashlib.sha256(doc_id.encode("utf-8")).hexdigest()[:8], 16) % 2 == 0 else "measure"


def label(text: str) -> str | None:
    """None when the document is clean technical Japanese by the labelling rule, else why not."""
    dense = re.sub(r"\s+", "", text)
    if len(dense) < MIN_CHARS:
        return "short"
    japanese = len(re.findall(r"[\u3041-\u30ff\u4e00-\u9fff\u3400-\u4dbf々〆〇]", dense))
    if japanese < MIN_JAPANESE * len(dense):
        return "untranslated"
    return None


def build(debs: Path = DEBS, out: Path = OUT, split: str = "document") -> dict[str, Path]:
    """Write out/tune.jsonl and out/measure.jsonl (and manifest.json); return the two paths."""
    sys.path.insert(0, str(ROOT / "src"))
    files = download(debs)
    docs = []
    for package, deb in files.items():
        version = deb.name.split("_")[1]
        root = unpack(deb, debs / "x" / package)
        if package.startswith("manpages-ja"):
            docs += man_pages(root, package, version)
        else:
            docs += html_docs(root, package, version)
    seen: set[str] = set()
    parts: dict[str, list[dict]] = {"tune": [], "measure": []}
    left_out: dict[str, int] = {"short": 0, "untranslated": 0, "exact_copy": 0}
    for doc in docs:
        why = label(doc["text"])
        if why is None:
            key = " ".join(doc["text"].split())
            why = "exact_copy" if key in seen else None
            seen.add(key)
        if why is not None:
            left_out[why] += 1
            continue
        doc["split"] = split_of(doc["id"], split)
        parts[doc["split"]].append(doc)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, records in parts.items():
        paths[name] = out / f"{name}.jsonl"
        with open(paths[name], "w", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    manifest = {
        "split": split,
        "sha256": {name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in paths.items()},
        "packages": {p: d.name for p, d in files.items()},
        "documents": {name: len(records) for name, records in parts.items()},
        "left_out": left_out,
        "by_package": {
            name: {p: sum(r["id"].startswith(p + ":") for r in records) for p in PACKAGES}
            for name, records in parts.items()
        },
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--debs", type=Path, default=DEBS, help="where the .deb files are (or go)")
    parser.add_argument(
        "--out", type=Path, default=None, help="default: runs/bench_clean/techja[_by_package]"
    )
    parser.add_argument("--split", choices=("document", "package"), default="document")
    args = parser.parse_args()
    args.out = args.out or (OUT if args.split == "document" else OUT.with_name("techja_by_package"))
    build(args.debs, args.out, args.split)
    print((args.out / "manifest.json").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
