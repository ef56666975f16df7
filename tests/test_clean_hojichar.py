"""A user's existing HojiChar Compose runs as a stage of jalm's pipeline, in-process and in workers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hojichar import Compose, document_filters

from jalm.corpus import CleanConfig, clean
from jalm.corpus.stages import HojiCharStage
from jalm.jsonl import read_records

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "clean"


@pytest.fixture()
def inputs(tmp_path: Path) -> Path:
    texts = [
        r["text"]
        for _, r in zip(range(6), read_records([ROOT / "data" / "corpus" / "wiki_jaquad.jsonl.zst"]))
    ]
    texts[1] = texts[1] + "\n秘密の合言葉はここにある。"
    texts[2] = texts[2] + "\nお問い合わせは03-1234-5678まで。"
    for n in range(2):
        with open(tmp_path / f"part-{n}.jsonl", "w", encoding="utf-8") as handle:
            for i in range(n, 6, 2):
                handle.write(json.dumps({"id": f"doc-{i}", "text": texts[i]}, ensure_ascii=False) + "\n")
    return tmp_path


def check(out: Path, stats: dict) -> None:
    assert stats["rejected"] == {"hojichar": 1}
    (rejected,) = list(read_records(sorted((out / "rejected").glob("*.jsonl*"))))
    assert rejected["id"] == "doc-1"
    assert (
        rejected["reason"]
        == "hojichar: rejected by ExampleDiscardDocumentContainKeyword (keyword=秘密の合言葉)"
    )
    kept = {r["id"]: r["text"] for r in read_records(sorted((out / "kept").glob("*.jsonl*")))}
    assert len(kept) == 5 and kept["doc-2"].endswith("お問い合わせは<電話番号>まで。")


def test_compose_object_as_stage_in_worker_processes(
    inputs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(FIXTURES))
    monkeypatch.setenv(
        "PYTHONPATH", f"{FIXTURES}:{ROOT / 'src'}"
    )  # spawned workers unpickle the filter class
    from hojichar_profile import make_compose

    out = tmp_path / "out"
    # jalm's own PII masking off, so that the phone number reaches HojiChar's masking filter.
    config = CleanConfig.load(overrides={"pii": {"mode": "off"}})
    stats = clean(
        sorted(inputs.glob("*.jsonl")),
        out,
        config,
        stages=[make_compose(pause=0.05)],
        workers=2,
        progress=False,
    )
    check(out, stats)
    # The stage's time is accounted under its own name: every document that reached it (kept, or
    # rejected by it) spent at least the 0.05 s its Pause filter sleeps, a lower bound no machine beats.
    # (The keyword filter rejects before the pause, so its document adds nothing.)
    reached = stats["kept"]
    assert stats["timings"]["cpu_s_by_step"]["hojichar"] >= 0.05 * reached - 0.001 > 0


def test_compose_named_in_config(inputs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(FIXTURES))
    config = CleanConfig.load(overrides={"stages": ["hojichar_profile:make_compose"], "pii": {"mode": "off"}})
    out = tmp_path / "out"
    check(out, clean(sorted(inputs.glob("*.jsonl")), out, config=config, progress=False))


def test_stage_reports_hojichar_rejections_and_rewrites() -> None:
    stage = HojiCharStage(Compose([document_filters.DocumentLengthFilter(min_doc_len=10, max_doc_len=20)]))
    assert stage("短い") == (
        "hojichar: rejected by DocumentLengthFilter (min_doc_len=10, max_doc_len=20)",
        "短い",
    )
    assert stage("ちょうどよい長さの文書です。") == (None, "ちょうどよい長さの文書です。")
