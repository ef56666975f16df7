"""Vocabulary expansion on a small scale: characters per token, and continued pretraining with and without it.

1. A base tokenizer (SentencePiece unigram, jalm's settings) is trained on English-heavy text (the bundled
   data/noisy/web_raw: HTML help pages, man pages; 21 % Japanese characters), and a base model (preset
   `test`, 2 layers × 64) is pretrained on the same text for --base-steps steps and exported.
2. `jalm tokenizer extend` appends --add Japanese pieces learned on data/corpus (Aozora + Wikipedia).
3. Characters per token on the bundled dev sets (data/dev/wiki_jaquad, and the held-out Aozora authors
   when /work/shared/data/dev is there), base against extended.
4. Continued pretraining from the base on data/corpus for --steps steps, three ways: the base tokenizer;
   the extended one with each new row the mean of its pieces' rows (Swallow's); the extended one with the
   new rows left at the seeded random init. Losses per token are not comparable across tokenizers, so
   the figure is nats per character: validation loss × (validation tokens / validation characters) of
   each pack (the eval windows are the first ones of the validation split; the ratio is the split's).

    nice -n 10 .venv/bin/python benchmarks/vocab_extend.py --threads 2 --out /tmp/vocab_extend.json
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def chars_per_token(model_file: Path, files: list[Path]) -> float:
    import sentencepiece as spm

    from jalm.jsonl import read_texts

    sp = spm.SentencePieceProcessor(model_file=str(model_file))
    chars = tokens = 0
    for text in read_texts(files):
        chars, tokens = chars + len(text), tokens + len(sp.encode(text))
    return chars / tokens


def continued(base: Path, packed: Path, out: Path, steps: int, init: str) -> dict:
    from jalm.data import read_meta
    from jalm.train import train
    from jalm.train.config import default_config
    from jalm.train.metrics import read_metrics

    cfg = default_config(
        str(base),
        max_steps=steps,
        warmup_steps=max(1, steps // 10),
        lr=1e-3,
        seq_len=128,
        micro_batch_size=8,
        save_every=0,
        log_every=10,
        eval_batches=20,
        dtype="float32",
        new_rows_init=init,
    )
    cfg.init_from = str(base)
    train(cfg, packed, out, device="cpu", progress=False)
    val = [r["val_loss"] for r in read_metrics(out / "metrics.jsonl") if "val_loss" in r][-1]
    meta = read_meta(packed)
    per_char = val * meta["val_tokens"] / meta["val_chars"]
    return {
        "val_loss_per_token": round(val, 4),
        "nats_per_char": round(per_char, 4),
        "bits_per_char": round(per_char / math.log(2), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--vocab", type=int, default=4000, help="base tokenizer size")
    parser.add_argument("--add", type=int, default=2000, help="pieces to add")
    parser.add_argument("--base-steps", type=int, default=300)
    parser.add_argument("--steps", type=int, default=200, help="continued-pretraining steps per variant")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, help="write the figures here (JSON)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from jalm.data import pack
    from jalm.export import export
    from jalm.tokenizer import train_tokenizer
    from jalm.tokenizer.extend import extend_tokenizer
    from jalm.train import train
    from jalm.train.config import default_config

    english = [REPO / "data" / "noisy" / "web_raw.jsonl.zst"]
    japanese = sorted((REPO / "data" / "corpus").glob("*.jsonl.zst"))
    dev = {"wiki_jaquad (data/dev)": [REPO / "data" / "dev" / "wiki_jaquad.jsonl.zst"]}
    heldout = Path("/work/shared/data/dev/aozora_heldout_authors.jsonl")
    if heldout.exists():
        dev["aozora held-out authors"] = [heldout]
    result: dict = {"settings": vars(args) | {"out": str(args.out)}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        train_tokenizer(
            english, work / "tok", vocab_size=args.vocab, progress=False, num_threads=args.threads
        )
        pack(english, work / "tok", work / "packed-en", val_fraction=0.05, seq_len=128, progress=False)
        cfg = default_config(
            "test",
            max_steps=args.base_steps,
            seq_len=128,
            micro_batch_size=8,
            save_every=0,
            log_every=50,
            dtype="float32",
            lr=3e-3,
            warmup_steps=20,
        )
        train(cfg, work / "packed-en", work / "base-run", device="cpu", progress=False)
        base = export(work / "base-run", work / "base")
        record = extend_tokenizer(base, japanese, args.add, work / "ext", threads=args.threads)
        result["extend"] = {k: record[k] for k in ("base_vocab", "added", "candidates", "tokenizer_json")}
        result["chars_per_token"] = {
            name: {
                "base": round(chars_per_token(base / "spiece.model", files), 3),
                "extended": round(chars_per_token(work / "ext" / "spiece.model", files), 3),
            }
            for name, files in dev.items()
        }
        print(json.dumps(result["chars_per_token"], ensure_ascii=False))
        pack(japanese, base, work / "packed-base", val_fraction=0.02, seq_len=128, progress=False)
        pack(japanese, work / "ext", work / "packed-ext", val_fraction=0.02, seq_len=128, progress=False)
        result["continued"] = {
            "base tokenizer": continued(base, work / "packed-base", work / "run-base", args.steps, "mean"),
            "extended, mean init": continued(
                base, work / "packed-ext", work / "run-mean", args.steps, "mean"
            ),
            "extended, random init": continued(
                base, work / "packed-ext", work / "run-rand", args.steps, "random"
            ),
        }
    print(json.dumps(result, indent=2, ensure_ascii=False))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
