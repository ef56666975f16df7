"""How much of a real manual page's prose each HTML extractor keeps, on pages nobody tuned on.

    nice .venv/bin/python benchmarks/html_prose.py --debs DIR [--per-package 40] [--out runs/bench_clean/html_prose.json]

Pages: GIMP and LibreOffice help pages (Debian packages gimp-help-ja, libreoffice-help-ja; `apt-get
download` them into DIR) ranked by sha256 of their path, taken from rank 300 on: benchmarks/techja_set.py
uses ranks 0–199 of the same packages and ../shared/data/noisy holds a few pages of them (left out
here), so these pages were seen by no rule's tuning.

Prose sentences of a page (the reference, fixed before measuring and independent of the extractors):
the page parsed with lxml, without head, script, style, nav, header, footer and elements whose class
or id is a navigation word (nav…, menu, breadcrumb, header, footer, sidebar, toc); its text split after 。！？;
a sentence counts when it ends in 。, holds ≥ 10 Japanese letters and no e-mail address or URL (jalm
masks those on purpose). A sentence is kept when its NFKC form without white space occurs in the output
(so a sentence split over lines by inline tags still counts).

Measured per extractor: prose sentences kept by the extractor alone; then through the whole default
`jalm clean` path (extractor + normalisation + filters + line cleaning): pages kept, the share of
prose sentences in the kept text (a rejected page keeps none), and how much of the kept text those
sentences make up (the rest: headings, menus, tables, code, short lines); CPU-seconds of extraction,
side by side in one run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import tempfile
import time
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"gimp-help-ja": "usr/share/gimp", "libreoffice-help-ja": "usr/share/libreoffice/help/ja"}
FIRST_RANK = 300  # techja_set.py takes ranks 0-199 of these packages
# a class or id word that names navigation (whole words: GIMP's "guimenu" is a menu name in prose)
NAV = re.compile(r"(?:nav\w*|menu|menubar|breadcrumbs?|header|footer|sidebar|toc)", re.IGNORECASE)
JAPANESE = re.compile(r"[\u3041-\u30ff\u4e00-\u9fff々〆〇]")
VARIANTS = (
    "resiliparse",  # the default: resiliparse's main-content heuristic
    "resiliparse-full",  # every block but nav, header, footer, aside; menus left to the line rules
    "trafilatura",  # favor_recall, as `jalm clean --extractor trafilatura` calls it
)


def pages(debs: Path, per_package: int) -> list[dict]:
    from techja_set import _shared_pages, unpack

    shared = _shared_pages()
    out = []
    for package, under in PACKAGES.items():
        deb = sorted(debs.glob(f"{package}_*.deb"))[-1]
        root = unpack(deb, debs / "x" / package)
        found = sorted((root / under).rglob("*.html"))
        ranked = sorted(found, key=lambda p: hashlib.sha256(str(p.relative_to(root)).encode()).hexdigest())
        chosen = [p for p in ranked[FIRST_RANK:] if "/" + str(p.relative_to(root)) not in shared]
        for path in chosen[:per_package]:
            html = path.read_text(encoding="utf-8", errors="replace")
            out.append({"id": f"{package}:{path.relative_to(root)}", "text": html, "kind": "html"})
    return out


def prose_sentences(html: str) -> list[str]:
    from lxml import html as lxml_html

    tree = lxml_html.fromstring(html.encode("utf-8"))
    for element in tree.xpath("//head|//script|//style|//nav|//header|//footer|//noscript"):
        element.drop_tree()
    for element in list(tree.iter()):
        if not isinstance(element.tag, str) or element.getparent() is None:
            continue
        names = f"{element.get('class', '')} {element.get('id', '')}".split()
        if any(NAV.fullmatch(name) for name in names):
            element.drop_tree()
    text = " ".join(tree.text_content().split())
    sentences = []
    for sentence in re.split(r"(?<=[。！？])", text):
        sentence = sentence.strip()
        if not sentence.endswith("。") or len(JAPANESE.findall(sentence)) < 10:
            continue
        if "@" in sentence or "http" in sentence or "www." in sentence:
            continue
        sentences.append(squeeze(sentence))
    return list(dict.fromkeys(sentences))


def squeeze(text: str) -> str:
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text))


def extract(html: str, extractor: str) -> str:
    from jalm.corpus.html import extract_main_text

    return extract_main_text(html, True, extractor) or ""


def through_clean(docs: list[dict], extractor: str) -> dict[str, str]:
    """The kept text of each page through `jalm clean`'s default path with `extractor`."""
    from jalm.corpus.config import CleanConfig
    from jalm.corpus.pipeline import clean
    from jalm.jsonl import read_records

    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "pages.jsonl"
        source.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs), encoding="utf-8")
        config = CleanConfig.load(overrides={"html": {"extractor": extractor}})
        clean([source], Path(tmp) / "out", config, progress=False, report=False)
        return {
            r["id"]: r["text"] for r in read_records(sorted((Path(tmp) / "out" / "kept").glob("*.jsonl*")))
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--debs", type=Path, required=True)
    parser.add_argument("--per-package", type=int, default=40)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_clean" / "html_prose.json")
    args = parser.parse_args()
    docs = pages(args.debs, args.per_package)
    reference = {d["id"]: prose_sentences(d["text"]) for d in docs}
    with_prose = [d for d in docs if reference[d["id"]]]
    total = sum(len(reference[d["id"]]) for d in with_prose)
    digest = hashlib.sha256("\n".join(sorted(d["id"] for d in docs)).encode()).hexdigest()[:16]
    report = {"pages": len(docs), "pages_with_prose": len(with_prose), "prose_sentences": total}
    report["page_ids_sha256"] = digest
    report["extractors"] = {}
    for extractor in VARIANTS:
        extract(with_prose[0]["text"], extractor)  # imports and first-call set-up, outside the timing
        cpu = float("inf")
        for _ in range(5):  # the fastest of 5 passes: the machine is shared
            started = time.process_time()
            outputs = {d["id"]: extract(d["text"], extractor) for d in with_prose}
            cpu = min(cpu, time.process_time() - started)
        outputs = {i: squeeze(t) for i, t in outputs.items()}
        kept = sum(s in outputs[i] for i, ss in reference.items() if ss for s in ss)
        row = {"cpu_s": round(cpu, 3), "extractor_sentences_kept": round(kept / total, 4)}
        cleaned = {i: squeeze(t) for i, t in through_clean(with_prose, extractor).items()}
        in_clean = sum(s in cleaned.get(i, "") for i, ss in reference.items() if ss for s in ss)
        row["clean_pages_kept"] = f"{sum(d['id'] in cleaned for d in with_prose)}/{len(with_prose)}"
        row["clean_sentences_kept"] = round(in_clean / total, 4)
        # what the kept text is besides those sentences (menus, headings, tables, code, short lines)
        kept_chars = sum(len(t) for t in cleaned.values())
        prose_chars = sum(len(s) for i, ss in reference.items() for s in ss if s in cleaned.get(i, ""))
        row["clean_kept_chars"] = kept_chars
        row["clean_prose_share_of_kept_chars"] = round(prose_chars / kept_chars, 4) if kept_chars else None
        report["extractors"][extractor] = row
        print(extractor, row, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
