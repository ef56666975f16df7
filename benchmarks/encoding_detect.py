"""Which charset detector for Japanese pages: uchardet (resiliparse), charset-normalizer, cchardet.

    .venv/bin/python benchmarks/encoding_detect.py [--data ../shared/data]

Pages: the real HTML help pages of ../shared/data/noisy/web_raw.jsonl with their charset
declarations removed (so only detection is left), each encoded as UTF-8, Shift_JIS (cp932), EUC-JP and
ISO-2022-JP (characters a charset lacks become "?"); whole pages and their first 1,000 bytes (short
pages are the hard case). A detection is right when decoding the bytes with the detected charset
gives back the original text exactly. Then jalm.corpus.encoding.decode_page on the same bytes (no
header, no meta: detection is all it has), and on bytes with a wrong header (ISO-8859-1, a common
server default) to show that the mojibake guard falls through to detection.
CPU seconds: time.process_time over all pages, this process, one thread.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

from jalm.corpus.encoding import codecs_for, decode_page

ENCODINGS = {"utf-8": "utf-8", "shift_jis": "cp932", "euc-jp": "euc_jp", "iso-2022-jp": "iso2022_jp_ext"}
_DECLARATION = re.compile(
    r"<meta[^>]+charset[^>]*>|<\?xml[^>]*\?>|\bencoding=\"[^\"]*\"|charset=[\w-]+", re.IGNORECASE
)


def pages(data: Path) -> list[str]:
    out = []
    with open(data / "noisy" / "web_raw.jsonl", encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            if record.get("kind") == "html":
                out.append(_DECLARATION.sub("", record["text"]))
    return out


def samples(texts: list[str], prefix: int | None) -> list[tuple[str, bytes, str]]:
    """(label, bytes, expected text) for every page and encoding the page's characters allow."""
    out = []
    for text in texts:
        for label, codec in ENCODINGS.items():
            # characters the charset lacks (©, —, NBSP in these pages) become "?", as a legacy site's would
            data = text.encode(codec, errors="replace")
            if prefix is not None:
                data = data[:prefix]
                # the expected text is what a correct decoder makes of a cut at a character boundary
                expected = _decodable_prefix(data, codec)
                if expected is None:
                    continue
                data = expected.encode(codec)
            else:
                expected = data.decode(codec)
            out.append((label, data, expected))
    return out


def _decodable_prefix(data: bytes, codec: str) -> str | None:
    for cut in range(len(data), max(len(data) - 8, 0), -1):
        try:
            return data[:cut].decode(codec)
        except UnicodeDecodeError:
            continue
    return None


def right(label: str | None, data: bytes, expected: str) -> bool:
    for codec in codecs_for(label):
        try:
            if data.decode(codec) == expected:
                return True
        except UnicodeDecodeError:
            continue
    return False


def detectors():
    from resiliparse.parse.encoding import detect_encoding

    out = {"uchardet (resiliparse 2.0.0)": lambda b: detect_encoding(b, html5_compatible=False)}
    try:
        import charset_normalizer

        out["charset-normalizer"] = lambda b: (
            (charset_normalizer.from_bytes(b).best() or None)
            and (charset_normalizer.from_bytes(b).best().encoding)
        )
    except ImportError:
        pass
    try:
        import cchardet

        out["cchardet"] = lambda b: cchardet.detect(b)["encoding"]
    except ImportError:
        pass
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--data", type=Path, default=Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
    )
    args = parser.parse_args()
    texts = pages(args.data)
    print(f"{len(texts)} real HTML pages, declarations removed\n")
    print("| detector | bytes | pages | right | by encoding (right/pages) | CPU s | MB per CPU-second |")
    print("|---|---|---:|---:|---|---:|---:|")
    for prefix in (None, 1000):
        cases = samples(texts, prefix)
        mb = sum(len(d) for _, d, _ in cases) / 1e6
        rows = dict(detectors())
        rows["jalm decode_page (no header)"] = None
        rows["jalm decode_page (header says ISO-8859-1)"] = "iso-8859-1"
        for name, detector in rows.items():
            per: dict[str, list[int]] = {}
            t0 = time.process_time()
            if callable(detector):
                verdicts = [right(detector(d), d, e) for _, d, e in cases]
            else:
                verdicts = [decode_page(d, detector).text == e for _, d, e in cases]
            cpu = time.process_time() - t0
            for (label, _, _), ok in zip(cases, verdicts):
                per.setdefault(label, [0, 0])
                per[label][0] += ok
                per[label][1] += 1
            by = ", ".join(f"{k} {v[0]}/{v[1]}" for k, v in per.items())
            where = "whole page" if prefix is None else f"first {prefix}"
            print(
                f"| {name} | {where} | {len(cases)} | {100 * sum(verdicts) / len(cases):.1f}% | {by} | {cpu:.3f} | {mb / cpu:.0f} |"
            )


if __name__ == "__main__":
    main()
