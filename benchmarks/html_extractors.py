"""HTML → main text: resiliparse against trafilatura, speed and quality, on the same real pages.

    .venv/bin/python benchmarks/html_extractors.py [--data ../shared/data] [--repeats 3]

Pages: the 75 real HTML help pages of ../shared/data/noisy/web_raw.jsonl (GIMP, LibreOffice,
LilyPond, aptitude, KiCad). Speed: MB of HTML per CPU-second (time.process_time, this process, one
thread), best of --repeats, each extractor called as jalm.corpus.html.extract_main_text calls it.

Quality, on the 66 pages whose templates mark main text and boilerplate (GIMP and aptitude: DocBook;
LibreOffice: its help template). The marking was set by reading the pages (checked by eye on each
template) and is taken from the page structure, so that every paragraph counts, not a sample:
- main text: every <p> outside the navigation, with at least 10 characters;
- boilerplate: every text piece of the navigation header and footer (DocBook navheader/navfooter and
  the "Report a bug" links; LibreOffice's header, module menu, index, search and donation frames,
  related-topics list, footer and debug box) that the rest of the page does not also hold (the page
  title sits in the navigation bar and in the heading).
Recovered: the share of main-text paragraphs found in the extractor's output (both sides NFKC and
white space collapsed). Leaked: the share of boilerplate pieces found as a whole line of the output
(or, for pieces of 15+ characters, anywhere in it).
"""

from __future__ import annotations

import argparse
import json
import time
import unicodedata
from pathlib import Path

from lxml import html as lxml_html

from jalm.corpus.html import extract_main_text

EXTRACTORS = ("resiliparse", "trafilatura")
# XPath of boilerplate containers per template (read off the pages; see the docstring).
_BOILERPLATE = (
    "//div[@class='navheader'] | //div[@class='navfooter'] | //a[contains(@class,'reportbug')]/.. | "
    "//header | //nav | //footer | //div[@id='SearchFrame'] | //div[@id='DonationFrame'] | "
    "//div[@id='DEBUG'] | //div[@class='relatedtopics']"
)


def squash(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).split())


def load(data: Path) -> list[dict]:
    with open(data / "noisy" / "web_raw.jsonl", encoding="utf-8") as handle:
        return [r for r in map(json.loads, handle) if r.get("kind") == "html"]


def marked(page: str) -> tuple[list[str], list[str]] | None:
    """(main-text paragraphs, boilerplate pieces) of a page whose template is known, else None."""
    tree = lxml_html.fromstring(page.encode("utf-8"))
    boiler = tree.xpath(_BOILERPLATE)
    if not boiler:
        return None
    containers = set(boiler)  # lxml elements: the same proxy while a reference is held
    main = [
        squash(p.text_content())
        for p in tree.iter("p")
        if not any(a in containers for a in p.iterancestors())
    ]
    pieces = {squash(t) for b in boiler for t in b.itertext()}
    # A piece that the page's main area also holds (the page title in the navigation bar is also
    # its heading) is not counted: finding it in the output is no leak.
    for container in boiler:
        if container.getparent() is not None:
            container.drop_tree()
    rest = squash(tree.text_content())
    return [m for m in main if len(m) >= 10], sorted(p for p in pieces if len(p) >= 2 and p not in rest)


def quality(text: str, main: list[str], boiler: list[str]) -> tuple[int, int]:
    flat = squash(text)
    lines = {squash(line) for line in text.split("\n")}
    found = sum(1 for m in main if m in flat)
    leaked = sum(1 for b in boiler if b in lines or (len(b) >= 15 and b in flat))
    return found, leaked


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--data", type=Path, default=Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
    )
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    pages = load(args.data)
    mb = sum(len(p["text"].encode("utf-8")) for p in pages) / 1e6
    for name in EXTRACTORS:  # warm up: imports and first-call set-up are not timed
        extract_main_text(pages[0]["text"], extractor=name)
    best = {}
    for _ in range(args.repeats):
        for name in EXTRACTORS:
            t0 = time.process_time()
            for page in pages:
                extract_main_text(page["text"], extractor=name)
            best[name] = min(best.get(name, float("inf")), time.process_time() - t0)
    labelled = [(p, m) for p in pages if (m := marked(p["text"])) is not None]
    n_main = sum(len(m[0]) for _, m in labelled)
    n_boiler = sum(len(m[1]) for _, m in labelled)
    print(
        f"{len(pages)} real pages, {mb:.2f} MB of HTML; quality on {len(labelled)} marked pages: "
        f"{n_main} main-text paragraphs, {n_boiler} boilerplate pieces\n"
    )
    print(
        "| extractor | CPU s | MB per CPU-second | × trafilatura | main text recovered | boilerplate leaked | empty pages |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in EXTRACTORS:
        found = leaked = empty = 0
        for page, (main_text, boiler) in labelled:
            text = extract_main_text(page["text"], extractor=name) or ""
            empty += not text.strip()
            f, b = quality(text, main_text, boiler)
            found += f
            leaked += b
        speed = mb / best[name]
        print(
            f"| {name} | {best[name]:.3f} | {speed:.1f} | {best['trafilatura'] / best[name]:.1f} | "
            f"{100 * found / n_main:.1f}% | {100 * leaked / n_boiler:.1f}% | {empty} |"
        )


if __name__ == "__main__":
    main()
