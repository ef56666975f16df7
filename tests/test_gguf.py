"""GGUF export: jalm's models written for llama.cpp and read back with gguf-py's own reader.

Metadata, tokenizer and weights are checked here against the model and SentencePiece themselves; that
llama.cpp runs the file (token ids, greedy text, perplexity) is measured by benchmarks/gguf_parity.py,
which needs llama-cpp-python (minutes to compile, so not part of `make test`).
"""

from __future__ import annotations

import shutil

import gguf
import numpy as np
import pytest

from jalm.errors import JalmError
from jalm.export.gguf import NEVER, _vocab, export_gguf


def read(path):
    reader = gguf.GGUFReader(path)
    fields = {name: field.contents() for name, field in reader.fields.items() if not name.startswith("GGUF.")}
    tensors = {t.name: t for t in reader.tensors}
    return fields, tensors


def as_matrix(tensor) -> np.ndarray:
    """A GGUF tensor as float32 in PyTorch's (out, in) order."""
    shape = tuple(int(n) for n in reversed(tensor.shape))
    return gguf.quants.dequantize(tensor.data, tensor.tensor_type).reshape(shape)


def hf_state(model_dir) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(model_dir / "model.safetensors")


@pytest.fixture(scope="module")
def neox_f16(tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("gguf") / "neox-f16.gguf"
    report = export_gguf(tiny_model_dir, out, "f16", progress=False)
    return out, report


@pytest.fixture(scope="module")
def gpt2_run(packed_dir, tmp_path_factory):
    from jalm.train import train
    from jalm.train.config import default_config

    out = tmp_path_factory.mktemp("gpt2_run")
    train(default_config("test-gpt2", max_steps=5), packed_dir, out, device="cpu", progress=False)
    return out


def test_neox_metadata_matches_the_model_config(neox_f16, tiny_model_dir):
    import json

    path, report = neox_f16
    config = json.loads((tiny_model_dir / "config.json").read_text())
    fields, _ = read(path)
    assert fields["general.architecture"] == "gptneox" == report["architecture"]
    assert fields["general.file_type"] == gguf.LlamaFileType.MOSTLY_F16
    assert fields["gptneox.context_length"] == config["max_position_embeddings"] == 256
    assert fields["gptneox.embedding_length"] == config["hidden_size"]
    assert fields["gptneox.block_count"] == config["num_hidden_layers"]
    assert fields["gptneox.feed_forward_length"] == config["intermediate_size"]
    assert fields["gptneox.attention.head_count"] == config["num_attention_heads"]
    # rotary on every dimension of each head (rotary_pct 1.0, LINE's 3.6b), base 10000, sequential residual
    assert fields["gptneox.rope.dimension_count"] == config["hidden_size"] // config["num_attention_heads"]
    assert fields["gptneox.rope.freq_base"] == 10000.0
    assert fields["gptneox.use_parallel_residual"] is False
    assert fields["gptneox.attention.layer_norm_epsilon"] == pytest.approx(1e-5)
    assert fields["jalm.preset"] == "test"
    assert "tokenizer.chat_template" not in fields  # a base model has none


def test_tokenizer_is_sentencepiece_in_llama_cpp_terms(neox_f16, tiny_model_dir):
    from jalm.tokenizer import load_sentencepiece

    path, report = neox_f16
    sp = load_sentencepiece(tiny_model_dir)
    fields, _ = read(path)
    assert fields["tokenizer.ggml.model"] == "plamo2"  # Viterbi with byte fallback, see jalm.export.gguf
    tokens, scores = fields["tokenizer.ggml.tokens"], fields["tokenizer.ggml.scores"]
    types = fields["tokenizer.ggml.token_type"]
    assert len(tokens) == len(scores) == len(types) == sp.get_piece_size() == report["vocab_size"]
    assert (fields["tokenizer.ggml.unknown_token_id"], fields["tokenizer.ggml.bos_token_id"]) == (0, 1)
    assert (fields["tokenizer.ggml.eos_token_id"], fields["tokenizer.ggml.padding_token_id"]) == (2, 3)
    assert (fields["tokenizer.ggml.seperator_token_id"], fields["tokenizer.ggml.mask_token_id"]) == (4, 5)
    assert fields["tokenizer.ggml.add_bos_token"] is False and fields["tokenizer.ggml.add_eos_token"] is False
    assert "tie" in fields["jalm.tokenizer.differences"]
    kinds = {"normal": 0, "byte": 0, "control": 0}
    for i in range(sp.get_piece_size()):
        piece = sp.id_to_piece(i)
        if sp.is_byte(i):
            kinds["byte"] += 1
            assert types[i] == gguf.TokenType.BYTE and tokens[i] == piece and scores[i] == NEVER
        elif sp.is_unknown(i) or sp.is_control(i):
            kinds["control"] += 1
            assert types[i] in (gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL) and tokens[i] == piece
            assert scores[i] == NEVER  # never matched in text, as in SentencePiece
        else:
            kinds["normal"] += 1
            # plamo2 reads text as it is: the space mark becomes a space; the score is SentencePiece's
            assert types[i] == gguf.TokenType.NORMAL and tokens[i] == piece.replace("▁", " ")
            assert scores[i] == sp.get_score(i) and (scores[i] * 16).is_integer()
    assert kinds["byte"] == 256 and kinds["control"] == 7
    assert tokens[sp.piece_to_id("<0x0A>")] == "<0x0A>" and tokens[7] == "\n"
    assert tokens[2] == "</s>" and types[0] == gguf.TokenType.UNKNOWN


def test_neox_f16_tensors_are_the_weights(neox_f16, tiny_model_dir):
    path, report = neox_f16
    _, tensors = read(path)
    state = hf_state(tiny_model_dir)
    hidden, heads = 64, 4
    head = hidden // heads
    assert report["tensors"] == len(tensors) == 1 + 12 * 2 + 3
    assert tensors["token_embd.weight"].tensor_type == gguf.GGMLQuantizationType.F16
    assert tensors["blk.0.attn_norm.weight"].tensor_type == gguf.GGMLQuantizationType.F32
    assert tensors["blk.1.ffn_up.bias"].tensor_type == gguf.GGMLQuantizationType.F32
    embedding = state["gpt_neox.embed_in.weight"]
    np.testing.assert_array_equal(as_matrix(tensors["token_embd.weight"]), embedding.astype(np.float16))
    # tied: llama.cpp's gptneox needs its own output matrix, the same numbers
    np.testing.assert_array_equal(as_matrix(tensors["output.weight"]), embedding.astype(np.float16))
    for ours, theirs in (
        ("blk.1.attn_output.weight", "gpt_neox.layers.1.attention.dense.weight"),
        ("blk.0.ffn_up.weight", "gpt_neox.layers.0.mlp.dense_h_to_4h.weight"),
        ("blk.0.ffn_down.weight", "gpt_neox.layers.0.mlp.dense_4h_to_h.weight"),
    ):
        np.testing.assert_array_equal(as_matrix(tensors[ours]), state[theirs].astype(np.float16))
    np.testing.assert_array_equal(
        as_matrix(tensors["output_norm.bias"]), state["gpt_neox.final_layer_norm.bias"]
    )
    # transformers splits the fused projection per head into [q | k | v] (GPTNeoXAttention); ggml wants
    # all queries, then all keys, then all values.
    qkv = as_matrix(tensors["blk.1.attn_qkv.weight"])
    bias = as_matrix(tensors["blk.1.attn_qkv.bias"])
    fused = state["gpt_neox.layers.1.attention.query_key_value.weight"]
    fused_bias = state["gpt_neox.layers.1.attention.query_key_value.bias"]
    for h in range(heads):
        for part in range(3):  # 0 q, 1 k, 2 v
            theirs = slice(h * 3 * head + part * head, h * 3 * head + (part + 1) * head)
            ours = slice(part * hidden + h * head, part * hidden + (h + 1) * head)
            np.testing.assert_array_equal(qkv[ours], fused[theirs].astype(np.float16))
            np.testing.assert_array_equal(bias[ours], fused_bias[theirs])


def test_gpt2_run_exports_q8_0(gpt2_run, tmp_path):
    out = tmp_path / "gpt2-q8_0.gguf"
    report = export_gguf(gpt2_run, out, "q8_0", progress=False)  # through a temporary HF export
    assert not [p for p in tmp_path.iterdir() if p.name != out.name]  # the temporary directory is gone
    fields, tensors = read(out)
    assert fields["general.architecture"] == "gpt2" and fields["gpt2.context_length"] == 256
    assert fields["general.file_type"] == gguf.LlamaFileType.MOSTLY_Q8_0
    assert fields["gpt2.feed_forward_length"] == 256 and fields["gpt2.attention.head_count"] == 4
    assert "output.weight" not in tensors  # tied: llama.cpp's gpt2 reads token_embd
    assert tensors["position_embd.weight"].tensor_type == gguf.GGMLQuantizationType.F32
    assert tensors["blk.0.attn_qkv.weight"].tensor_type == gguf.GGMLQuantizationType.Q8_0
    assert report["tensor_types"] == {"Q8_0": 1 + 2 * 4, "F32": 1 + 2 * 8 + 2}

    from jalm.export import export

    model_dir = export(gpt2_run, tmp_path / "hf")
    state = hf_state(model_dir)
    np.testing.assert_array_equal(as_matrix(tensors["position_embd.weight"]), state["transformer.wpe.weight"])
    for ours, theirs in (
        ("blk.0.attn_qkv.weight", "transformer.h.0.attn.c_attn.weight"),
        ("blk.1.ffn_down.weight", "transformer.h.1.mlp.c_proj.weight"),
        ("token_embd.weight", "transformer.wte.weight"),
    ):
        weight = state[theirs].T if "wte" not in theirs else state[theirs]  # Conv1D stores (in, out)
        got = as_matrix(tensors[ours])
        assert got.shape == weight.shape
        # q8_0: blocks of 32 values, each within half a step (block max / 127) of the weight, plus the
        # step's own rounding to f16 (up to 127 steps × 2^-11 relative)
        blocks = weight.reshape(-1, 32)
        step = np.abs(blocks).max(axis=1, keepdims=True) / 127
        error = np.abs(got.reshape(-1, 32) - blocks)
        assert np.all(error <= step * (0.5 + 127 / 2048)) and error.max() > 0


@pytest.mark.parametrize("quant", ["f32", "bf16"])
def test_f32_is_exact_and_bf16_rounds_like_torch(quant, tiny_model_dir, tmp_path):
    import torch

    out = tmp_path / f"m-{quant}.gguf"
    export_gguf(tiny_model_dir, out, quant, progress=False)
    _, tensors = read(out)
    weight = hf_state(tiny_model_dir)["gpt_neox.layers.0.mlp.dense_h_to_4h.weight"]
    want = weight if quant == "f32" else torch.from_numpy(weight).bfloat16().float().numpy()
    np.testing.assert_array_equal(as_matrix(tensors["blk.0.ffn_up.weight"]), want)


def test_vocabulary_padded_to_the_model_size(tiny_model_dir):
    tokens, scores, types, specials = _vocab(tiny_model_dir / "spiece.model", 4000 + 3)
    assert [t.decode() for t in tokens[-3:]] == ["[PAD0]", "[PAD1]", "[PAD2]"]
    assert scores[-3:] == [NEVER] * 3 and types[-3:] == [gguf.TokenType.UNUSED] * 3
    assert specials == {"unk": 0, "bos": 1, "eos": 2, "pad": 3, "sep": 4, "mask": 5}
    with pytest.raises(JalmError, match="pieces for a model vocabulary of 100"):
        _vocab(tiny_model_dir / "spiece.model", 100)


def test_refuses_what_llama_cpp_would_tokenize_differently(tiny_model_dir, tmp_path):
    from sentencepiece import sentencepiece_model_pb2 as pb

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    proto = pb.ModelProto()
    proto.ParseFromString((model_dir / "spiece.model").read_bytes())
    proto.trainer_spec.byte_fallback = False
    proto.normalizer_spec.add_dummy_prefix = True
    (model_dir / "spiece.model").write_bytes(proto.SerializeToString())
    with pytest.raises(JalmError, match="byte fallback.*dummy prefix"):
        export_gguf(model_dir, tmp_path / "m.gguf", progress=False)
    assert not (tmp_path / "m.gguf").exists()
    with pytest.raises(JalmError, match="must end in .gguf"):
        export_gguf(tiny_model_dir, tmp_path / "m.bin", progress=False)


def test_chat_template_travels_with_an_instruction_tuned_model(tiny_model_dir, tmp_path):
    import json

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    config = json.loads((model_dir / "tokenizer_config.json").read_text())
    template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    (model_dir / "tokenizer_config.json").write_text(json.dumps({**config, "chat_template": template}))
    export_gguf(model_dir, tmp_path / "chat.gguf", progress=False)
    fields, _ = read(tmp_path / "chat.gguf")
    assert fields["tokenizer.chat_template"] == template


def test_cli_writes_gguf(tiny_model_dir, tmp_path, capsys):
    from jalm.cli import main

    out = tmp_path / "m.gguf"
    assert (
        main(["export", str(tiny_model_dir), "--format", "gguf", "--quant", "q8_0", "--out", str(out)]) == 0
    )
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "Q8_0" in printed and "plamo2" in printed
    assert main(["export", str(tiny_model_dir), "--format", "gguf", "--out", str(tmp_path / "x")]) == 2
