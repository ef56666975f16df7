"""Does a refactor of the training engine change training? Run the same seeded runs on two checkouts.

    python benchmarks/trainer_identity.py                 # this checkout against 26a1ba6 (before the Trainer)
    python benchmarks/trainer_identity.py --before REF

Three runs of the 2-layer `test` preset on the bundled corpus (float32, CPU, 1 thread): plain with gradient
accumulation and periodic validation; a loss spike injected and rolled back to a checkpoint; a NaN
injected and skipped. For each, the final checkpoint's weights are hashed (SHA-256 over every tensor's
bytes) and the metrics (all but timings) compared. Prints one line per run and exits 1 on any difference.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUNS = {
    "plain": {"max_steps": 25, "save_every": 10, "grad_accum": 2, "eval_every": 10},
    "rollback": {
        "max_steps": 30,
        "save_every": 10,
        "spike_action": "rollback",
        "extra": {"inject": {"step": 22, "kind": "spike"}},
    },
    "skip_nan": {"max_steps": 20, "save_every": 0, "extra": {"inject": {"step": 12, "kind": "nan"}}},
}

CHILD = r"""
import hashlib, itertools, json, sys
from pathlib import Path
import torch
torch.set_num_threads(1)
from jalm.data import pack
from jalm.jsonl import read_records
from jalm.model import build_model, get_preset, hf_config
from jalm.tokenizer import train_tokenizer
from jalm.train import checkpoint as ckpt
from jalm.train import train
from jalm.train.config import default_config

work, runs, data = Path(sys.argv[1]), json.loads(sys.argv[2]), Path(sys.argv[3])
corpus = work / "corpus.jsonl"
if not corpus.exists():
    wiki = itertools.islice(read_records([data / "corpus" / "wiki_jaquad.jsonl.zst"]), 60)
    aozora = itertools.islice(read_records([data / "corpus" / "aozora.jsonl.zst"]), 20)
    with open(corpus, "w", encoding="utf-8") as out:
        for record in itertools.chain(wiki, aozora):
            out.write(json.dumps({"text": record["text"][:5000]}, ensure_ascii=False) + "\n")
    train_tokenizer([corpus], work / "tok", vocab_size=4000, progress=False)
    pack([corpus], work / "tok", work / "packed", val_fraction=0.1, seq_len=64, progress=False)
result = {}
for name, settings in runs.items():
    run = work / sys.argv[4] / name
    train(default_config("test", dtype="float32", **settings), work / "packed", run, device="cpu", progress=False)
    model = build_model(hf_config(get_preset("test"), 4000))
    ckpt.load_checkpoint(ckpt.latest_checkpoint(run), model, None)
    digest = hashlib.sha256(b"".join(t.numpy().tobytes() for t in model.state_dict().values())).hexdigest()
    metrics = [json.loads(line) for line in open(run / "metrics.jsonl")]
    for record in metrics:
        record.pop("tokens_per_s", None), record.pop("elapsed_s", None)
    result[name] = {"weights_sha256": digest, "metrics": metrics}
print(json.dumps(result))
"""


def run_checkout(src: Path, work: Path, label: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-c", CHILD, str(work), json.dumps(RUNS), str(REPO / "data"), label]
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        sys.exit(f"{label}: training failed\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--before", default="26a1ba6", help="git ref of the reference checkout")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        before_tree = Path(tmp) / "before"
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "--detach", str(before_tree), args.before],
            check=True,
            capture_output=True,
        )
        try:
            work = Path(tmp) / "work"
            work.mkdir()
            before = run_checkout(before_tree / "src", work, "before")
            after = run_checkout(REPO / "src", work, "after")
        finally:
            subprocess.run(
                ["git", "-C", str(REPO), "worktree", "remove", "--force", str(before_tree)], check=False
            )
    same = True
    for name in RUNS:
        weights = before[name]["weights_sha256"] == after[name]["weights_sha256"]
        metrics = before[name]["metrics"] == after[name]["metrics"]
        same &= weights and metrics
        print(
            f"{name:9s} weights {'identical' if weights else 'DIFFER'} ({after[name]['weights_sha256'][:16]}), "
            f"metrics {'identical' if metrics else 'DIFFER'} ({len(after[name]['metrics'])} records)"
        )
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
