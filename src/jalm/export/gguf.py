"""`jalm export --format gguf`: a jalm model → one GGUF file that llama.cpp (and its bindings) run.

Both layouts map onto architectures llama.cpp already has: the 1.7b GPT-2 layout onto `gpt2` (learned
positions, output tied to the embedding) and the GPT-NeoX presets onto `gptneox` (rotary on
`rotary_pct` of each head, sequential residual; llama.cpp requires an `output` tensor there, so the
tied embedding is written twice). Tensors are converted as llama.cpp's `convert_hf_to_gguf.py` does:
GPT-2's Conv1D weights transposed, GPT-NeoX's per-head interleaved QKV regrouped into Q, K, V; 1-D
tensors, norms and position embeddings stay float32; a matrix whose rows do not split into 32-value
blocks falls back from q8_0 to f16 (counted in the report).

The tokenizer is SentencePiece unigram with byte fallback. llama.cpp has three candidates (measured in
benchmarks/gguf_parity.py): `llama` (SPM) has byte fallback but merges pairs greedily by score, which
is not unigram Viterbi; `t5` (UGM) is Viterbi but turns characters outside the vocabulary into <unk>;
`plamo2` is a Viterbi over the same pieces and scores with UTF-8 byte fallback, and is what we write.
What still differs from SentencePiece, written into the file as `jalm.tokenizer.differences`:

- exact ties: where two segmentations have the same total score (on the 1/16 score grid this happens:
  "し|てくる" and "して|くる", or runs of spaces in another order), SentencePiece keeps the one whose
  last piece is longest, llama.cpp the one whose first piece is longest (it scores right to left). The
  text is the same and both are equally likely under the model; on the dev set 1.6% of lines and 0.04%
  of tokens differ this way, and nothing else differs there;
- a literal "▁" (U+2581) in the text is a space to SentencePiece; llama.cpp's plamo2 tokenizer reads
  text as it is, so pieces are stored with real spaces and a literal "▁" falls back to bytes;
- a byte-order mark (U+FEFF) at the start of the text is dropped by llama.cpp.

Scores stay on jalm's 1/16 grid, which llama.cpp's integer scores (score × 10⁴) hold exactly, so ties
are ties in both. Special, control, byte and padding pieces get a score llama.cpp never matches in
text, as SentencePiece never does. llama.cpp adds no <s>, as jalm's models expect.

The network differs in one place: llama.cpp's GELU is the tanh approximation, transformers' "gelu" the
exact one (jalm trains with the exact one, as LINE did); the benchmark measures what that changes.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jalm.errors import JalmError
from jalm.model.families import Tensor, family
from jalm.tokenizer import exactness_problems

if TYPE_CHECKING:
    import numpy as np

# --quant: the type of the weight matrices. Only types gguf-py quantizes exactly as ggml's reference
# code does; lower bits (q4_K_M, ...) are llama-quantize's job, from the f16 file.
QUANTS = ("f32", "f16", "bf16", "q8_0")
TOKENIZER_MODEL = "plamo2"
# A score llama.cpp's plamo2 tokenizer treats as "never match" (score × 10⁴ must be ≤ -2·10⁷).
NEVER = -10000.0
DIFFERENCES = (
    "llama.cpp tokenizer 'plamo2' (Viterbi over SentencePiece's pieces and scores, UTF-8 byte fallback). "
    "Ids equal SentencePiece's except: (1) exact ties, two segmentations of the same total score "
    "('し|てくる' / 'して|くる'): SentencePiece keeps the longest last piece, llama.cpp the longest first "
    "piece, same text (1.6% of dev lines, 0.04% of tokens); (2) a literal '▁' (U+2581) in text is a space "
    "to SentencePiece, bytes here; (3) llama.cpp drops a leading U+FEFF. No <s> is added. "
    "Measured: jalm benchmarks/gguf_parity.py."
)
# Buffers transformers may keep in a checkpoint that are not weights.
_BUFFERS = ("attn.bias", "attn.masked_bias", "attention.bias", "attention.masked_bias", "rotary_emb.inv_freq")


def add_tokenizer(writer, model: str, tokens: list, scores: list, types: list, specials: dict) -> None:
    """The tokenizer keys of a GGUF file: the pieces under llama.cpp's tokenizer `model`, special ids."""
    writer.add_tokenizer_model(model)
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    for role, token_id in specials.items():
        getattr(writer, f"add_{role}_token_id")(token_id)
    # jalm's models see no <s> and no </s> around a text (docs/design.md, the recipe); llama.cpp must not add them either.
    writer.add_add_bos_token(False)
    writer.add_add_eos_token(False)
    writer.add_add_space_prefix(False)


def export_gguf(
    source: str | Path,
    out_file: str | Path,
    quant: str = "f16",
    checkpoint: str | Path | None = None,
    progress: bool = True,
    verify: bool = True,
) -> dict[str, Any]:
    """A training run or a Hugging Face model directory written by jalm → a GGUF file; returns a report.

    A run is first exported as a Hugging Face directory (checked against the checkpoint unless
    `verify` is False) into a temporary directory beside `out_file`. The GGUF file is always read back.
    """
    from jalm.train.loop import RUN_CONFIG

    source, out_file = Path(source), Path(out_file)
    if out_file.suffix != ".gguf":
        raise JalmError(f"{out_file}: a GGUF file name must end in .gguf")
    if quant not in QUANTS:
        raise JalmError(f"unknown --quant {quant!r}; choose one of {', '.join(QUANTS)}")
    if (source / RUN_CONFIG).exists():
        from jalm.export import export

        out_file.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=out_file.parent, prefix=".tmp-hf-") as tmp:
            model_dir = export(source, Path(tmp) / "model", checkpoint, verify=verify)
            return write_gguf(model_dir, out_file, quant, progress)
    if checkpoint is not None:
        raise JalmError(f"{source}: --checkpoint is for training runs, not model directories")
    return write_gguf(source, out_file, quant, progress)


def write_gguf(
    model_dir: str | Path, out_file: str | Path, quant: str = "f16", progress: bool = True
) -> dict:
    """Convert a Hugging Face GPT-2 / GPT-NeoX directory with spiece.model into `out_file` (atomically)."""
    import gguf
    import numpy as np

    from jalm.hf import check_model_dir
    from jalm.io import atomic_path
    from jalm.progress import progress_bar

    model_dir, out_file = check_model_dir(model_dir), Path(out_file)
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    arch, plan = _plan(config, model_dir)
    reader = _WeightReader(model_dir)
    reader.check(plan, model_dir)
    vocab_size = config["vocab_size"]
    tokens, scores, types, specials = _vocab(model_dir / "spiece.model", vocab_size)

    writer = gguf.GGUFWriter(None, arch)
    _add_metadata(writer, config, model_dir, quant)
    add_tokenizer(writer, TOKENIZER_MODEL, tokens, scores, types, specials)
    writer.add_string("jalm.tokenizer.differences", DIFFERENCES)
    template = _chat_template(model_dir)
    if template:  # an instruction-tuned export: llama.cpp's chat endpoints render the same prompt
        writer.add_chat_template(template)

    matrix_type = _qtype(quant)
    types_by_name, fallback = {}, []
    for tensor in plan:
        shape = reader.shape(tensor)
        qtype = _tensor_type(tensor.name, shape, matrix_type)
        if qtype != matrix_type and len(shape) == 2 and not _is_float_only(tensor.name):
            fallback.append(tensor.name)
        types_by_name[tensor.name] = qtype
        nbytes = _nbytes(shape, qtype)
        writer.add_tensor_info(tensor.name, shape, np.dtype(np.float32), nbytes, raw_dtype=qtype)

    bar = progress_bar(total=len(plan), desc="gguf", unit=" tensors", disable=not progress, file=sys.stderr)
    with atomic_path(out_file) as tmp:
        writer.open_output_file(tmp)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for tensor in plan:
            array = reader.read(tensor)
            writer.write_tensor_data(gguf.quants.quantize(array, types_by_name[tensor.name]))
            bar.update()
        writer.close()
    bar.close()
    report = {
        "file": str(out_file),
        "bytes": out_file.stat().st_size,
        "architecture": arch,
        "quant": quant,
        "tensors": len(plan),
        "tensor_types": _count(t.name for t in types_by_name.values()),
        "f16_fallback": fallback,
        "vocab_size": vocab_size,
        "padding_tokens": len(tokens) - sum(1 for t in types if t != gguf.TokenType.UNUSED),
        "special_ids": specials,
        "tokenizer": TOKENIZER_MODEL,
        "tokenizer_differences": DIFFERENCES,
    }
    _verify(out_file, arch, plan, types_by_name, reader, len(tokens))
    return report


def format_report(report: dict) -> str:
    """The export report as a few lines for the terminal."""
    types = ", ".join(f"{n} {name}" for name, n in sorted(report["tensor_types"].items()))
    lines = [
        f"wrote {report['file']} ({report['bytes'] / 2**20:.1f} MiB, {report['architecture']}, "
        f"--quant {report['quant']}: {report['tensors']} tensors: {types})",
        f"vocabulary {report['vocab_size']} ({report['padding_tokens']} padding), special ids "
        + ", ".join(f"{role} {i}" for role, i in report["special_ids"].items()),
        f"tokenizer: {report['tokenizer_differences']}",
    ]
    if report["f16_fallback"]:
        lines.insert(1, f"{len(report['f16_fallback'])} matrices kept in f16 (rows not in 32-value blocks)")
    return "\n".join(lines)


def _count(names: Iterator[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    return counts


def _chat_template(model_dir: Path) -> str | None:
    path = model_dir / "tokenizer_config.json"
    if not path.exists():
        return None
    template = json.loads(path.read_text(encoding="utf-8")).get("chat_template")
    return template if isinstance(template, str) else None


# --- the model ---------------------------------------------------------------------------------------


def _plan(config: dict, model_dir: Path) -> tuple[str, list[Tensor]]:
    """The GGUF architecture and its tensors, as the model's family maps them; anything else is an error."""
    kind = config.get("model_type")
    fam = family(kind, str(model_dir))
    if fam.model_type != kind:
        raise JalmError(
            f"{model_dir}: model_type {kind!r}; GGUF export knows {fam.model_type!r}, not its kin"
        )
    return fam.gguf_arch, fam.gguf_tensors(config, model_dir)


def _add_metadata(writer, config: dict, model_dir: Path, quant: str) -> None:
    import gguf

    provenance = {}
    if (model_dir / "jalm.json").exists():
        provenance = json.loads((model_dir / "jalm.json").read_text(encoding="utf-8"))
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(f"jalm {provenance.get('preset', model_dir.name)}")
    writer.add_file_type(_file_type(quant))
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    writer.add_license("apache-2.0")
    family(config["model_type"]).gguf_metadata(writer, config)
    for key in ("preset", "steps", "tokens"):
        if key in provenance:
            writer.add_string(f"jalm.{key}", str(provenance[key]))


def _qtype(quant: str):
    import gguf

    q = gguf.GGMLQuantizationType
    return {"f32": q.F32, "f16": q.F16, "bf16": q.BF16, "q8_0": q.Q8_0}[quant]


def _file_type(quant: str):
    import gguf

    f = gguf.LlamaFileType
    return {"f32": f.ALL_F32, "f16": f.MOSTLY_F16, "bf16": f.MOSTLY_BF16, "q8_0": f.MOSTLY_Q8_0}[quant]


def _is_float_only(name: str) -> bool:
    """Tensors llama.cpp keeps in float32 whatever the file type (as convert_hf_to_gguf.py does)."""
    return not name.endswith(".weight") or "_norm." in name or name.startswith("position_embd.")


def _tensor_type(name: str, shape: tuple[int, ...], matrix_type):
    import gguf

    q = gguf.GGMLQuantizationType
    if len(shape) < 2 or _is_float_only(name):
        return q.F32
    block = gguf.GGML_QUANT_SIZES[matrix_type][0]
    return matrix_type if shape[-1] % block == 0 else q.F16


def _nbytes(shape: tuple[int, ...], qtype) -> int:
    import math

    import gguf

    return math.prod(gguf.quant_shape_to_byte_shape(shape, qtype))


class _WeightReader:
    """Tensors of model.safetensors (or its shards) read one at a time as float32 numpy arrays."""

    def __init__(self, model_dir: Path) -> None:
        self.state = None  # a pytorch_model.bin checkpoint, read whole (weights_only: no pickled code runs)
        index = model_dir / "model.safetensors.index.json"
        if index.exists():
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            self.files = {name: model_dir / file for name, file in weight_map.items()}
        elif (model_dir / "model.safetensors").exists():
            from safetensors import safe_open

            with safe_open(model_dir / "model.safetensors", framework="pt") as handle:
                self.files = dict.fromkeys(handle.keys(), model_dir / "model.safetensors")
        elif (model_dir / "pytorch_model.bin").exists() or (
            model_dir / "pytorch_model.bin.index.json"
        ).exists():
            from jalm.model.weights import read_state_dict

            self.state = read_state_dict(model_dir)
            self.files = dict.fromkeys(self.state, model_dir / "pytorch_model.bin")
        else:
            raise JalmError(
                f"{model_dir}: GGUF export reads safetensors or pytorch_model.bin weights; none found"
            )

    def check(self, plan: list[Tensor], model_dir: Path) -> None:
        """Every tensor the plan needs is there, and nothing in the checkpoint is left out silently."""
        needed = {t.source for t in plan}
        missing = sorted(needed - set(self.files))
        if missing:
            raise JalmError(f"{model_dir}: checkpoint lacks {missing[0]} (and {len(missing) - 1} more)")
        tied_head = {"lm_head.weight", "embed_out.weight"}
        unused = [
            n for n in self.files if n not in needed and n not in tied_head and not n.endswith(_BUFFERS)
        ]
        if unused:
            raise JalmError(
                f"{model_dir}: checkpoint tensor {unused[0]} has no place in GGUF ({len(unused)} such)"
            )

    def _torch(self, name: str):
        from safetensors import safe_open

        if self.state is not None:
            return self.state[name]

        with safe_open(self.files[name], framework="pt") as handle:
            return handle.get_tensor(name)

    def shape(self, tensor: Tensor) -> tuple[int, ...]:
        from safetensors import safe_open

        if self.state is not None:
            shape = tuple(self.state[tensor.source].shape)
            return shape[::-1] if tensor.transpose else shape
        with safe_open(self.files[tensor.source], framework="pt") as handle:
            shape = tuple(handle.get_slice(tensor.source).get_shape())
        return shape[::-1] if tensor.transpose else shape

    def read(self, tensor: Tensor) -> np.ndarray:
        import numpy as np

        array = self._torch(tensor.source).float().numpy()
        if tensor.transpose:
            array = array.T
        if tensor.rope_heads:  # as convert_hf_to_gguf.py's LlamaModel.permute
            heads = tensor.rope_heads
            array = array.reshape(heads, 2, array.shape[0] // heads // 2, *array.shape[1:])
            array = array.swapaxes(1, 2).reshape(-1, *array.shape[3:])
        if tensor.qkv_heads:
            rows = array.shape[0]
            grouped = array.reshape(tensor.qkv_heads, 3, rows // (3 * tensor.qkv_heads), *array.shape[1:])
            array = grouped.swapaxes(0, 1).reshape(array.shape)
        return np.ascontiguousarray(array, dtype=np.float32)


# --- the tokenizer -----------------------------------------------------------------------------------


def _vocab(spiece_model: Path, vocab_size: int) -> tuple[list[bytes], list[float], list[int], dict[str, int]]:
    """Pieces, scores and token types in llama.cpp's terms, padded to the model's vocabulary size, and
    the special ids (unk, bos, eos, pad from the model; sep and mask by their pieces, if present)."""
    import gguf
    from sentencepiece import sentencepiece_model_pb2 as pb

    if not spiece_model.is_file():
        raise JalmError(f"{spiece_model}: no SentencePiece model beside the weights")
    model = pb.ModelProto()
    model.ParseFromString(spiece_model.read_bytes())
    problems = exactness_problems(model)  # what llama.cpp's plamo2 tokenizer would do differently
    kinds = pb.ModelProto.SentencePiece
    pieces = {p.piece for p in model.pieces}
    if any(f"<0x{b:02X}>" not in pieces for b in range(256)):
        problems.append("byte pieces <0x00>..<0xFF> missing")
    if len(model.pieces) > vocab_size:
        problems.append(f"{len(model.pieces)} pieces for a model vocabulary of {vocab_size}")
    if problems:
        raise JalmError(f"{spiece_model}: cannot export this tokenizer to GGUF: {'; '.join(problems)}")

    types_map = {
        kinds.NORMAL: gguf.TokenType.NORMAL,
        kinds.UNKNOWN: gguf.TokenType.UNKNOWN,
        kinds.CONTROL: gguf.TokenType.CONTROL,
        kinds.BYTE: gguf.TokenType.BYTE,
    }
    tokens, scores, types = [], [], []
    for p in model.pieces:
        normal = p.type == kinds.NORMAL
        # llama.cpp's plamo2 tokenizer reads text as it is: a space is " ", not SentencePiece's "▁".
        tokens.append((p.piece.replace("▁", " ") if normal else p.piece).encode("utf-8"))
        scores.append(p.score if normal else NEVER)
        types.append(int(types_map[p.type]))
    padded = vocab_size - len(tokens)
    for i in range(padded):  # rows of the embedding the tokenizer never produces
        name = f"[PAD{i}]"
        if name in pieces:
            raise JalmError(f"{spiece_model}: a piece is named {name!r}, the name of a padding token")
        tokens.append(name.encode("utf-8"))
        scores.append(NEVER)
        types.append(int(gguf.TokenType.UNUSED))
    specials = {role: getattr(model.trainer_spec, f"{role}_id") for role in ("unk", "bos", "eos", "pad")}
    index = {p.piece: i for i, p in enumerate(model.pieces)}
    specials.update({role: index[f"<{role}>"] for role in ("sep", "mask") if f"<{role}>" in index})
    return tokens, scores, types, {role: i for role, i in specials.items() if i >= 0}


# --- verification ------------------------------------------------------------------------------------


def _verify(
    out_file: Path, arch: str, plan: list[Tensor], types_by_name: dict, reader, n_tokens: int
) -> None:
    """Read the file back with gguf-py's own reader: architecture, vocabulary, every tensor's shape and type."""
    import gguf

    gguf_file = gguf.GGUFReader(out_file)
    field = gguf_file.get_field(gguf.Keys.General.ARCHITECTURE)
    if field is None or field.contents() != arch:
        raise JalmError(f"{out_file}: written without architecture {arch!r}")
    tokens = gguf_file.get_field(gguf.Keys.Tokenizer.LIST)
    if tokens is None or len(tokens.data) != n_tokens:
        raise JalmError(f"{out_file}: token list does not have {n_tokens} entries")
    written = {t.name: t for t in gguf_file.tensors}
    for tensor in plan:
        got = written.get(tensor.name)
        want = reader.shape(tensor)
        if got is None or tuple(int(n) for n in reversed(got.shape)) != want:
            raise JalmError(f"{out_file}: tensor {tensor.name} missing or of the wrong shape")
        if got.tensor_type != types_by_name[tensor.name]:
            raise JalmError(f"{out_file}: tensor {tensor.name} has type {got.tensor_type.name}")
