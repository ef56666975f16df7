"""Export a preference-tuning run: exactly sft's export (merged weights verified against the run's
logits, the chat template in tokenizer_config.json, `</s>` as end and pad), with the run's kind, loss and
β in jalm.json and dpo_stats.json in training/."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from jalm.io import write_atomic


def export_dpo(
    run_dir: Path,
    run: dict,
    out: Path,
    checkpoint: Path | None,
    adapter_only: bool = False,
    verify: bool = True,
) -> Path:
    from jalm.dpo.train import STATS_FILE
    from jalm.sft.export import export_sft

    out = export_sft(run_dir, run, out, checkpoint, adapter_only, verify=verify)
    provenance = json.loads((out / "jalm.json").read_text(encoding="utf-8"))
    provenance.update({"kind": "dpo", "loss": run["options"]["loss"], "beta": run.get("beta")})
    write_atomic(out / "jalm.json", json.dumps(provenance, indent=2, ensure_ascii=False) + "\n")
    if (run_dir / STATS_FILE).exists():
        shutil.copy2(run_dir / STATS_FILE, out / "training" / STATS_FILE)
    return out
