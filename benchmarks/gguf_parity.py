"""llama.cpp runs jalm's GGUF export as SentencePiece and transformers run the model: ids, text, perplexity.

One run, side by side, on a jalm model directory (`jalm export`):

1. tokenizer: llama.cpp's token ids (llama-cpp-python, from the f16 file) against SentencePiece's own
   `encode` on the tokenizer parity corpus of tests/test_tokenizer.py and on the dev set (per document
   and per line), with every mismatch classified (exact score tie in another order, literal "▁",
   leading BOM, other). The same is measured for llama.cpp's two other SentencePiece-like tokenizers
   (`llama` = SPM, `t5` = UGM) written with the same pieces, to show why the export uses `plamo2`.
2. greedy continuations: argmax decoding for N tokens from each prompt, transformers (float32) vs
   llama.cpp f16 and q8_0; each prompt's ids come from llama.cpp's own tokenizer.
3. perplexity on the dev set: the same SentencePiece ids, cut into windows of the model's context,
   through transformers (float32), llama.cpp f16 and llama.cpp q8_0; file sizes beside it.

    pip install llama-cpp-python==0.3.36      # builds llama.cpp (minutes); the `llama` extra
    python benchmarks/gguf_parity.py --model runs/demo/model --dev ../shared/data/dev --threads 2

Writes the GGUF files into --work (a temporary directory by default) and the figures to --out (JSON).
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

PROMPTS = (
    "吾輩は猫である。",
    "昔々、あるところに",
    "日本の首都は",
    "東京大学は",
    "今日はとても良い天気なので、",
    "人工知能とは",
    "夏目漱石は",
    "山の上から",
)


def parity_corpus() -> list[str]:
    """The texts tests/test_tokenizer.py's parity tests use (real lines, noisy documents, hand-made cases)."""
    from test_tokenizer import parity_texts

    return parity_texts()


def load_llama(path: Path, threads: int, vocab_only: bool = False, n_ctx: int = 512):
    from llama_cpp import Llama

    return Llama(
        model_path=str(path),
        vocab_only=vocab_only,
        n_ctx=n_ctx,
        n_batch=n_ctx,
        n_ubatch=n_ctx,
        n_threads=threads,
        n_threads_batch=threads,
        logits_all=not vocab_only,
        verbose=False,
    )


# --- tokenizer -------------------------------------------------------------------------------------


def variant_vocab_file(model_dir: Path, out: Path, tokenizer_model: str) -> Path:
    """A tensor-less GGUF with the model's metadata and the same pieces under another llama.cpp tokenizer
    (`llama` or `t5` read "▁" as the space mark, so pieces keep it there)."""
    import gguf

    from jalm.export.gguf import _add_metadata, _plan, _vocab, add_tokenizer

    config = json.loads((model_dir / "config.json").read_text())
    arch, _ = _plan(config, model_dir)
    tokens, scores, types, specials = _vocab(model_dir / "spiece.model", config["vocab_size"])
    if tokenizer_model != "plamo2":
        tokens = [
            t.replace(b" ", "▁".encode()) if k == gguf.TokenType.NORMAL else t for t, k in zip(tokens, types)
        ]
        scores = [s if k == gguf.TokenType.NORMAL else 0.0 for s, k in zip(scores, types)]
    writer = gguf.GGUFWriter(out, arch)
    _add_metadata(writer, config, model_dir, "f16")
    add_tokenizer(writer, tokenizer_model, tokens, scores, types, specials)
    writer.add_remove_extra_whitespaces(False)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    return out


def classify(text: str, ours: list[int], theirs: list[int], sp) -> str:
    """Why llama.cpp's ids differ from SentencePiece's on one text."""
    if text.startswith("\ufeff"):
        return "leading BOM"
    if "▁" in text:
        return "literal ▁"
    if sp.unk_id() in ours and sp.unk_id() not in theirs:
        return "<unk> instead of bytes"
    if math.isclose(sum(sp.get_score(i) for i in ours), sum(sp.get_score(i) for i in theirs)):
        if sorted(ours) == sorted(theirs):
            return "tie: same pieces, other order"
        return "tie: other pieces, equal score"
    return "other"


# The two differences other than ties, which real text seldom has: each should differ, as stated.
KNOWN_DIFFERENCES = {"literal ▁": "a▁b と ▁", "leading BOM": "\ufeff吾輩は猫である。"}


def known_differences(llm, sp) -> dict:
    out = {}
    for name, text in KNOWN_DIFFERENCES.items():
        ours = llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
        out[name] = {
            "sentencepiece": [sp.id_to_piece(i) for i in sp.encode(text)],
            "llama.cpp": [sp.id_to_piece(i) for i in ours],
        }
    return out


def compare_ids(llm, sp, texts: list[str]) -> dict:
    """Texts with identical ids, tokens that differ (difflib alignment) and mismatches by cause."""
    same = tokens = differing = decode_differs = 0
    causes: dict[str, int] = {}
    examples: list[dict] = []
    for text in texts:
        ours = llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
        theirs = sp.encode(text)
        tokens += len(theirs)
        decode_differs += llm.detokenize(ours).decode("utf-8", errors="replace") != sp.decode(theirs)
        if ours == theirs:
            same += 1
            continue
        matcher = difflib.SequenceMatcher(None, theirs, ours, autojunk=False)
        differing += len(theirs) - sum(block.size for block in matcher.get_matching_blocks())
        cause = classify(text, ours, theirs, sp)
        causes[cause] = causes.get(cause, 0) + 1
        if len(examples) < 5:
            where = next(
                (i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs))
            )
            examples.append(
                {
                    "cause": cause,
                    "text": text[:80],
                    "sentencepiece": [sp.id_to_piece(i) for i in theirs[where : where + 4]],
                    "llama.cpp": [sp.id_to_piece(i) for i in ours[where : where + 4]],
                }
            )
    return {
        "texts": len(texts),
        "identical": same,
        "mismatch_rate": round(1 - same / len(texts), 5) if texts else 0.0,
        "tokens": tokens,
        "tokens_differing": differing,
        "token_mismatch_rate": round(differing / tokens, 6) if tokens else 0.0,
        "causes": causes,
        "decode_differs": decode_differs,  # llama.cpp's decode of its ids vs SentencePiece's of its own
        "examples": examples,
    }


# --- model -----------------------------------------------------------------------------------------


def greedy_transformers(model, ids: list[int], steps: int) -> tuple[list[int], list[float]]:
    """Argmax tokens and, for each, the gap between the best and second-best logit."""
    import torch

    ids, out, gaps = list(ids), [], []
    with torch.no_grad():
        for _ in range(steps):
            logits = model(input_ids=torch.tensor([ids])).logits[0, -1]
            top = torch.topk(logits, 2)
            out.append(int(top.indices[0]))
            gaps.append(float(top.values[0] - top.values[1]))
            ids.append(out[-1])
    return out, gaps


def greedy_llama(llm, ids: list[int], steps: int) -> list[int]:
    llm.reset()
    llm.eval(ids)
    out = []
    for _ in range(steps):
        out.append(int(np.argmax(llm.scores[llm.n_tokens - 1])))
        llm.eval([out[-1]])
    return out


def windows(sp, texts: list[str], size: int) -> list[list[int]]:
    """Each document's SentencePiece ids cut into windows of `size` (a window of one predicts nothing)."""
    out = []
    for text in texts:
        ids = sp.encode(text)
        out += [ids[i : i + size] for i in range(0, len(ids), size) if len(ids[i : i + size]) > 1]
    return out


# Windows whose full log-probabilities are compared with transformers' (all windows' argmax are).
DIFF_WINDOWS = 4


def transformers_logits(model):
    import torch

    def run(chunk: list[int]):
        with torch.no_grad():
            return model(input_ids=torch.tensor([chunk])).logits[0, :-1].double()

    return run


def llama_logits(llm):
    import torch

    def run(chunk: list[int]):
        llm.reset()
        llm.eval(chunk)
        return torch.from_numpy(np.array(llm.scores[: len(chunk) - 1], dtype=np.float64))

    return run


def score(run, chunks: list[list[int]], reference: dict | None = None) -> dict:
    """Negative log-likelihood of each window's next tokens; with a reference run, how often the most
    likely next token is the reference's (every position) and the largest log-probability difference
    (first DIFF_WINDOWS windows)."""
    import torch

    total, count, agree, max_diff = 0.0, 0, 0, 0.0
    tops, kept = [], []
    for k, chunk in enumerate(chunks):
        logprobs = torch.log_softmax(run(chunk), dim=-1)
        total -= float(logprobs.gather(1, torch.tensor(chunk[1:])[:, None]).sum())
        count += len(chunk) - 1
        top = logprobs.argmax(dim=-1)
        tops.append(top)
        if k < DIFF_WINDOWS:
            kept.append(logprobs)
        if reference is not None:
            agree += int((top == reference["tops"][k]).sum())
            if k < DIFF_WINDOWS:
                max_diff = max(max_diff, float((logprobs - reference["logprobs"][k]).abs().max()))
    out = {"nll": total, "tokens": count, "tops": tops, "logprobs": kept}
    if reference is not None:
        out["top1_agreement"] = agree / count
        out["max_logprob_diff"] = max_diff
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a jalm Hugging Face model directory")
    parser.add_argument(
        "--dev", default=str(ROOT.parent / "shared" / "data" / "dev"), help="dev JSONL files or dir"
    )
    parser.add_argument("--work", help="where the GGUF files go (default: a temporary directory)")
    parser.add_argument("--out", help="JSON file for the figures")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=32, help="greedy tokens per prompt")
    parser.add_argument("--max-docs", type=int, default=0, help="dev documents for perplexity (0: all)")
    parser.add_argument(
        "--no-tokenizer",
        action="store_true",
        help="skip the tokenizer part (e.g. a second model, same spiece)",
    )
    args = parser.parse_args()

    import llama_cpp
    import torch
    from transformers import AutoModelForCausalLM

    from jalm.export.gguf import export_gguf
    from jalm.jsonl import expand_inputs, read_texts
    from jalm.tokenizer import load_sentencepiece

    torch.set_num_threads(args.threads)
    model_dir = Path(args.model)
    work = Path(args.work or tempfile.mkdtemp(prefix="gguf-parity-"))
    work.mkdir(parents=True, exist_ok=True)
    sp = load_sentencepiece(model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    n_ctx = config.get("max_position_embeddings") or config["n_positions"]
    results: dict = {
        "model": str(model_dir),
        "llama_cpp_python": llama_cpp.__version__,
        "threads": args.threads,
        "architecture": config["model_type"],
    }

    results["safetensors_bytes"] = (model_dir / "model.safetensors").stat().st_size
    files = {}
    for quant in ("f16", "q8_0"):
        started = time.perf_counter()
        report = export_gguf(model_dir, work / f"model-{quant}.gguf", quant, progress=False)
        files[quant] = Path(report["file"])
        results[f"{quant}_bytes"] = report["bytes"]
        results[f"{quant}_export_s"] = round(time.perf_counter() - started, 2)

    dev_docs = list(read_texts(expand_inputs([Path(args.dev)])))
    dev_lines = [line for doc in dev_docs for line in doc.split("\n") if line.strip()]
    corpora = {"parity corpus": parity_corpus(), "dev documents": dev_docs, "dev lines": dev_lines}
    results["tokenizer"] = {}
    for name in () if args.no_tokenizer else ("plamo2", "llama", "t5"):
        path = (
            files["f16"]
            if name == "plamo2"
            else variant_vocab_file(model_dir, work / f"vocab-{name}.gguf", name)
        )
        vocab = load_llama(path, args.threads, vocab_only=True)
        results["tokenizer"][name] = {
            corpus: compare_ids(vocab, sp, texts) for corpus, texts in corpora.items()
        }
        if name == "plamo2":
            results["known_differences"] = known_differences(vocab, sp)
        vocab.close()

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    llamas = {quant: load_llama(path, args.threads, n_ctx=n_ctx) for quant, path in files.items()}
    greedy = []
    for prompt in PROMPTS:
        ids = llamas["f16"].tokenize(prompt.encode("utf-8"), add_bos=False, special=False)
        reference, gaps = greedy_transformers(model, ids, args.steps)
        row = {"prompt": prompt, "ids_equal_sentencepiece": ids == sp.encode(prompt)}
        row["transformers"] = sp.decode(reference)
        for quant, llm in llamas.items():
            got = greedy_llama(llm, ids, args.steps)
            first = next((i for i, (a, b) in enumerate(zip(got, reference)) if a != b), None)
            row[f"{quant}_equal"] = first is None
            if first is not None:
                row[f"{quant}_first_difference"] = first
                row[f"{quant}_logit_gap_there"] = round(gaps[first], 5)
                row[f"{quant}_text"] = sp.decode(got)
        greedy.append(row)
    results["greedy"] = greedy

    docs = dev_docs[: args.max_docs] if args.max_docs else dev_docs
    chunks = windows(sp, docs, n_ctx)
    chars = sum(len(d) for d in docs)
    ppl, reference = {}, None
    for name, run in (
        ("transformers float32", transformers_logits(model)),
        ("llama.cpp f16", llama_logits(llamas["f16"])),
        ("llama.cpp q8_0", llama_logits(llamas["q8_0"])),
    ):
        started = time.perf_counter()
        scored = score(run, chunks, reference)
        reference = reference or scored
        ppl[name] = {
            "ppl": round(math.exp(scored["nll"] / scored["tokens"]), 4),
            "bits_per_char": round(scored["nll"] / math.log(2) / chars, 4),
            "tokens": scored["tokens"],
            "seconds": round(time.perf_counter() - started, 1),
        }
        if "top1_agreement" in scored:
            ppl[name]["top1_agreement"] = round(scored["top1_agreement"], 6)
            ppl[name]["max_logprob_diff"] = round(scored["max_logprob_diff"], 5)
    results["perplexity"] = {"documents": len(docs), "characters": chars, "window": n_ctx, **ppl}

    for llm in llamas.values():
        llm.close()
    print(summary(results))
    if args.out:
        Path(args.out).write_text(json.dumps(results, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return 0


def summary(results: dict) -> str:
    lines = [
        f"model {results['model']} ({results['architecture']}), llama-cpp-python {results['llama_cpp_python']}"
    ]
    lines.append(
        "\n| llama.cpp tokenizer | corpus | texts | identical ids | mismatch | tokens differing "
        "| decode differs | causes |"
    )
    lines.append("|---|---|---|---|---|---|---|---|")
    for name, corpora in results["tokenizer"].items():
        for corpus, r in corpora.items():
            causes = ", ".join(f"{k} {v}" for k, v in r["causes"].items()) or "—"
            lines.append(
                f"| {name} | {corpus} | {r['texts']} | {r['identical']} | {r['mismatch_rate']:.2%} | "
                f"{r['tokens_differing']} of {r['tokens']} ({r['token_mismatch_rate']:.4%}) | "
                f"{r['decode_differs']} | {causes} |"
            )
    for name, pieces in results.get("known_differences", {}).items():
        lines.append(f"{name}: SentencePiece {pieces['sentencepiece']}, llama.cpp {pieces['llama.cpp']}")
    greedy = results["greedy"]
    for quant in ("f16", "q8_0"):
        equal = sum(row[f"{quant}_equal"] for row in greedy)
        lines.append(f"\ngreedy {quant} vs transformers float32: {equal}/{len(greedy)} prompts identical")
        for row in greedy:
            if not row[f"{quant}_equal"]:
                lines.append(
                    f"  {row['prompt']}: differs at token {row[f'{quant}_first_difference']} "
                    f"(transformers' top-2 logit gap there {row[f'{quant}_logit_gap_there']})"
                )
    p = results["perplexity"]
    lines.append(
        f"\nperplexity: {p['documents']} dev documents, {p['characters']:,} characters, windows of {p['window']}"
    )
    lines.append(
        "| | file | PPL | bits/char | tokens | top-1 = transformers' | max abs log-prob diff "
        f"(first {DIFF_WINDOWS} windows) |"
    )
    lines.append("|---|---|---|---|---|---|---|")
    for name in ("transformers float32", "llama.cpp f16", "llama.cpp q8_0"):
        size = {"llama.cpp f16": "f16_bytes", "llama.cpp q8_0": "q8_0_bytes"}.get(name, "safetensors_bytes")
        file = f"{results[size] / 2**20:.2f} MiB"
        r = p[name]
        agree = f"{r['top1_agreement']:.4%}" if "top1_agreement" in r else "—"
        diff = r.get("max_logprob_diff", "—")
        lines.append(
            f"| {name} | {file} | {r['ppl']} | {r['bits_per_char']} | {r['tokens']} | {agree} | {diff} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
