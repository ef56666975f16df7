"""The exact Hugging Face translation of a SentencePiece model: tokenizer.json and its config files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jalm.errors import JalmError
from jalm.io import write_atomic
from jalm.tokenizer.spec import SCORE_GRID, SPECIAL_TOKENS, SPIECE_MODEL

if TYPE_CHECKING:
    import tokenizers

# --- Hugging Face files ----------------------------------------------------------------------------

# Texts that exercise every rule the translation depends on; checked on every export.
_PROBES = (
    "吾輩は猫である。名前はまだ無い。\n",
    "  leading, trailing  and  runs   of spaces \t tab\r\n",
    "絵文字👨‍👩‍👧🇯🇵 と 𠮷野家 と ｶﾞｲｺｸ\u3000全角",
    "literal specials </s><s><unk><pad><sep><mask><cls> and bytes <0x41><0xE3>",
    "x=1234567890; ▁ 'quoted' \"double\" {braces} [brackets] ~^`|\\",
)


def exactness_problems(model: Any) -> list[str]:
    """What keeps a SentencePiece ModelProto from being reproduced exactly by another unigram
    implementation (tokenizers' Unigram, llama.cpp's plamo2): the settings `jalm tokenizer train`
    fixes, and scores on the 1/SCORE_GRID grid so that ties break the same way. Empty: none."""
    from sentencepiece import sentencepiece_model_pb2 as pb

    spec, norm = model.trainer_spec, model.normalizer_spec
    problems = []
    if spec.model_type != pb.TrainerSpec.UNIGRAM:
        problems.append("model_type is not unigram")
    if not spec.byte_fallback:
        problems.append("no byte fallback")
    if norm.precompiled_charsmap or norm.name not in ("identity", ""):
        problems.append(f"normalization is {norm.name!r}, not identity")
    if norm.add_dummy_prefix or norm.remove_extra_whitespaces or not norm.escape_whitespaces:
        problems.append("it adds a dummy prefix, squeezes or does not escape whitespace")
    if spec.treat_whitespace_as_suffix:
        problems.append("whitespace is a suffix")
    kinds = pb.ModelProto.SentencePiece
    if any(p.type in (kinds.USER_DEFINED, kinds.UNUSED) for p in model.pieces):
        problems.append("it has user-defined or unused pieces")
    if not all((p.score * SCORE_GRID).is_integer() for p in model.pieces if p.type == kinds.NORMAL):
        problems.append(f"its scores are not multiples of 1/{SCORE_GRID}")
    return problems


def _hf_tokenizer(proto: bytes, source: Path) -> tokenizers.Tokenizer:
    """Build the exact `tokenizers` equivalent of a SentencePiece unigram model (see module docstring)."""
    from sentencepiece import sentencepiece_model_pb2 as pb
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers

    model = pb.ModelProto()
    model.ParseFromString(proto)
    problems = exactness_problems(model)
    types = pb.ModelProto.SentencePiece
    pieces = [(p.piece, p.score, p.type) for p in model.pieces]
    normal = [(piece, score) for piece, score, kind in pieces if kind == types.NORMAL]
    if problems:
        raise JalmError(
            f"{source}: cannot write an exact tokenizer.json: {'; '.join(problems)} (train it with `jalm tokenizer train`)"
        )
    single = {piece for piece, _ in normal if len(piece) == 1}
    min_score = min(score for _, score in normal)
    vocab = []
    for piece, score, kind in pieces:
        if kind == types.NORMAL:
            vocab.append((piece, score))
        else:
            # unknown, control, byte: SentencePiece never matches these in text. Spelling the same
            # characters one ordinary piece each scores at least len * min_score, so this never wins.
            missing = sorted(set(piece) - single)
            if missing:
                raise JalmError(
                    f"{source}: cannot write an exact tokenizer.json: {piece!r} uses characters that are "
                    f"not pieces ({''.join(missing)!r}); train it with `jalm tokenizer train`"
                )
            vocab.append((piece, len(piece) * min_score - 10.0))
    if any(f"<0x{b:02X}>" not in {p for p, _, _ in pieces} for b in range(256)):
        raise JalmError(f"{source}: cannot write an exact tokenizer.json: byte pieces <0x00>..<0xFF> missing")

    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=model.trainer_spec.unk_id, byte_fallback=True))
    tokenizer.normalizer = normalizers.Replace(" ", "▁")
    tokenizer.decoder = decoders.Sequence(
        [decoders.ByteFallback(), decoders.Fuse(), decoders.Replace("▁", " ")]
    )
    specials = [piece for piece, _, kind in pieces if kind in (types.UNKNOWN, types.CONTROL)]
    tokenizer.add_special_tokens([AddedToken(p, special=True, normalized=False) for p in specials])
    tokenizer.encode_special_tokens = True
    return tokenizer


def write_hf_tokenizer_files(spiece_model: Path, out_dir: Path, model_max_length: int = 2048) -> None:
    """Write ``spiece.model`` (copied if elsewhere) and the Hugging Face tokenizer files into `out_dir`.

    Verifies the result against SentencePiece on probe texts; a mismatch is a JalmError, never a file.
    """
    import sentencepiece as spm

    spiece_model = Path(spiece_model)
    if not spiece_model.is_file():
        raise JalmError(f"{spiece_model}: no such SentencePiece model")
    proto = spiece_model.read_bytes()
    tokenizer = _hf_tokenizer(proto, spiece_model)
    sp = spm.SentencePieceProcessor(model_proto=proto)
    names = dict(zip(("unk", "bos", "eos", "pad", "sep", "mask", "cls"), SPECIAL_TOKENS))
    for index, (role, piece) in enumerate(names.items()):
        if sp.id_to_piece(index) != piece:
            raise JalmError(
                f"{spiece_model}: id {index} is {sp.id_to_piece(index)!r}, not the {role} token {piece!r}"
            )
    for text in _PROBES:
        ids, expected = tokenizer.encode(text, add_special_tokens=False).ids, sp.encode(text)
        if ids != expected or tokenizer.decode(ids, skip_special_tokens=False) != sp.decode(expected):
            raise JalmError(f"{spiece_model}: tokenizer.json would not match SentencePiece on {text!r}")

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not (out_dir / SPIECE_MODEL).exists() or not (out_dir / SPIECE_MODEL).samefile(spiece_model):
        write_atomic(out_dir / SPIECE_MODEL, proto)
    write_atomic(out_dir / "tokenizer.json", tokenizer.to_str(pretty=True))
    special_map = {f"{role}_token": piece for role, piece in names.items()}
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        **special_map,
        # A language model's input gets no <s> or </s>: pack adds </s> between documents itself.
        "add_bos_token": False,
        "add_eos_token": False,
        # "</s>" written in a text is text, as in SentencePiece (see module docstring).
        "split_special_tokens": True,
        "clean_up_tokenization_spaces": False,
        "model_max_length": model_max_length,
        "padding_side": "right",
        # transformers 4.x's PreTrainedTokenizerFast otherwise also returns token_type_ids, which GPT-2 and
        # GPT-NeoX's generate() rejects: `model.generate(**tokenizer(text, return_tensors="pt"))` would fail.
        "model_input_names": ["input_ids", "attention_mask"],
    }
    for name, content in (("tokenizer_config.json", config), ("special_tokens_map.json", special_map)):
        write_atomic(out_dir / name, json.dumps(content, ensure_ascii=False, indent=2) + "\n")
