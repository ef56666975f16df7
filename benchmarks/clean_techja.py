"""Technical Japanese kept, noise removed: jalm clean on the technical-Japanese labelled set
(techja_set.py) and on noise, the tuning and the measuring parts side by side.

    .venv/bin/python benchmarks/clean_techja.py            # builds the sets on first use
    .venv/bin/python benchmarks/clean_techja.py --by-package DIR   # the package-split measuring part only

- tuning:    techja tune half  + SYNTHETIC noise (jalm.experiment.noise.make_labelled_noise, near-
             duplicates made from the tune half): what the rules were changed on;
- measuring: techja measure half + REAL noise (clean_noise_real.py): what the result is reported on.
Each part is one `jalm clean` run (default configuration), clean documents first, so a near-
duplicate's original comes before it. A clean document dropped as a copy of a clean document that
is kept counts as kept (the set holds real near-copies: the same page in two packages); a
near-duplicate noise document counts as removed when its group ends with one copy kept. Writes runs/bench_clean/techja_quality.json.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from clean_common import WORK, read_jsonl  # noqa: E402
from techja_set import OUT as TECHJA  # noqa: E402


def sets() -> dict[str, list[Path]]:
    import clean_noise_real
    import techja_set

    if not (TECHJA / "measure.jsonl").exists():
        techja_set.build()
    if not (clean_noise_real.OUT / "manifest.json").exists():
        clean_noise_real.build()
    from jalm.experiment.noise import make_labelled_noise

    tune_noise = WORK / "noise_tune.jsonl"
    texts = [r["text"] for r in read_jsonl(TECHJA / "tune.jsonl")]
    with open(tune_noise, "w", encoding="utf-8") as handle:
        for record in make_labelled_noise(texts):
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return {
        "tuning": [TECHJA / "tune.jsonl", tune_noise],
        "measuring": [TECHJA / "measure.jsonl", *sorted(clean_noise_real.OUT.glob("*.jsonl"))],
    }


def run(files: list[Path], name: str) -> dict:
    from jalm.corpus import clean
    from jalm.jsonl import read_records

    out = WORK / f"techja_{name}"
    shutil.rmtree(out, ignore_errors=True)
    clean(files, out, progress=False)
    kept = {r["id"] for r in read_records(sorted((out / "kept").glob("*.jsonl*")))}
    reasons = {r["id"]: r["reason"] for r in read_records(sorted((out / "rejected").glob("*.jsonl*")))}
    rows: dict[tuple[str, str], list[bool]] = defaultdict(list)
    lost: Counter[str] = Counter()
    missed: Counter[str] = Counter()
    clean_ids = [r["id"] for r in read_jsonl(files[0])]
    for path in files:
        for record in read_jsonl(path):
            doc_id = record["id"]
            if record.get("label") == "noise":
                group = record["category"]
                right = doc_id not in kept
                if "copy_of" in record:
                    right = copy_right(record, clean_ids, kept, reasons)
                rows[("noise", group)].append(right)
                if not right:
                    missed[group] += 1
            else:
                group = record["id"].split(":", 1)[0]
                right = doc_id in kept or copy_of_kept(doc_id, kept, reasons)
                rows[("clean", group)].append(right)
                if not right:
                    lost[reasons.get(doc_id, "?").split(":", 1)[0]] += 1
    return {
        "rows": {f"{a}/{b}": v for (a, b), v in rows.items()},
        "lost": lost,
        "missed": missed,
        "reasons": reasons,
    }


_DUPLICATE = re.compile(
    r"^(?:near_duplicate: of|exact_duplicate: same normalised text as) (.+?)(?: \(MinHash.*)?$"
)


def copy_of_kept(doc_id: str, kept: set[str], reasons: dict[str, str]) -> bool:
    """Whether a clean document was dropped as a copy of one that is kept (directly or through an
    exact copy that was itself dropped as a near copy): its text is in the output once."""
    for _ in range(3):
        match = _DUPLICATE.match(reasons.get(doc_id, ""))
        if match is None:
            return False
        doc_id = match.group(1)
        if doc_id in kept:
            return True
    return False


def copy_right(record: dict, clean_ids: list[str], kept: set[str], reasons: dict[str, str]) -> bool:
    """A near-duplicate is handled right when its group ends with one copy kept: removed when the
    original is kept; kept (or rejected by a filter) when the original was rejected by a filter.
    Wrong: both kept, or the copy dropped as a duplicate while the original is not kept."""
    original = record["copy_of"]
    original = clean_ids[original] if isinstance(original, int) else original
    if original in kept:
        return record["id"] not in kept
    return not reasons.get(record["id"], "").startswith(("near_duplicate", "exact_duplicate"))


def table(results: dict[str, dict]) -> list[str]:
    lines = ["| part | set | group | docs | right |", "|---|---|---|---:|---:|"]
    for part, result in results.items():
        totals: dict[str, list[bool]] = defaultdict(list)
        for key, values in sorted(result["rows"].items()):
            label, group = key.split("/", 1)
            verb = "kept" if label == "clean" else "removed"
            totals[label] += values
            lines.append(
                f"| {part} | {label} ({verb}) | {group} | {len(values)} | {100 * sum(values) / len(values):.1f}% |"
            )
        for label, values in totals.items():
            verb = "kept" if label == "clean" else "removed"
            share = 100 * sum(values) / len(values)
            lines.append(
                f"| **{part}** | **{label} ({verb})** | **all** | **{len(values)}** | **{share:.1f}%** |"
            )
    return lines


def by_package(directory: Path) -> None:
    """Measure the package-split set's measuring part (techja_set.py --split package), clean side only:
    print its sha256 (to compare with the one recorded before measuring) and the kept shares."""
    import hashlib

    measure = directory / "measure.jsonl"
    print(f"{measure}: sha256 {hashlib.sha256(measure.read_bytes()).hexdigest()}")
    result = run([measure], "by_package_measure")
    print("\n".join(table({"measuring (by package)": result})))
    print(f"clean lost by rule {dict(result['lost'].most_common())}")


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--by-package", type=Path, help="a techja_set.py --split package directory")
    args = parser.parse_args()
    if args.by_package:
        by_package(args.by_package)
        return
    parts = sets()
    results = {name: run(files, name) for name, files in parts.items()}
    print("\n".join(table(results)))
    for name, result in results.items():
        print(
            f"{name}: clean lost by rule {dict(result['lost'].most_common())}; noise kept by category {dict(result['missed'].most_common())}"
        )
    WORK.mkdir(parents=True, exist_ok=True)
    summary = {name: {"rows": r["rows"], "reasons": r["reasons"]} for name, r in results.items()}
    (WORK / "techja_quality.json").write_text(
        json.dumps(summary, ensure_ascii=False, indent=1), encoding="utf-8"
    )


if __name__ == "__main__":
    main()
