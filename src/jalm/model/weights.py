"""The weights of a local Hugging Face model directory, read without running pickled code.

safetensors (one file or an index of shards) first; else `pytorch_model.bin` (or its shards), as LINE
released japanese-large-lm, read with `torch.load(weights_only=True)`: tensors and plain containers only,
any other pickled object is refused rather than executed.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from jalm.errors import JalmError

# Buffers some checkpoints hold that are not parameters (causal masks, rotary tables): recomputed, not loaded.
BUFFERS = ("attn.bias", "attn.masked_bias", "attention.bias", "attention.masked_bias", "rotary_emb.inv_freq")


def _files(model_dir: Path) -> list[Path]:
    for index, single in (
        ("model.safetensors.index.json", "model.safetensors"),
        ("pytorch_model.bin.index.json", "pytorch_model.bin"),
    ):
        if (model_dir / index).is_file():
            weight_map = json.loads((model_dir / index).read_text(encoding="utf-8"))["weight_map"]
            return [model_dir / name for name in sorted(set(weight_map.values()))]
        if (model_dir / single).is_file():
            return [model_dir / single]
    raise JalmError(f"{model_dir}: no weights (model.safetensors or pytorch_model.bin, or their shards)")


def read_state_dict(model_dir: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor of the directory's checkpoint, on the CPU, in its stored dtype."""
    state: dict[str, torch.Tensor] = {}
    for path in _files(Path(model_dir)):
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state.update(load_file(path))
            continue
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001 - the unpickler's refusals have many types
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise JalmError(f"{path}: not a plain tensor checkpoint, refused unread ({first})") from None
        if not isinstance(loaded, dict) or not all(isinstance(t, torch.Tensor) for t in loaded.values()):
            raise JalmError(f"{path}: not a state dict of tensors")
        state.update(loaded)
    return state


def grow_embeddings(
    theirs: dict[str, torch.Tensor],
    ours: dict[str, torch.Tensor],
    names: dict[str, str],
    splits: dict[int, list[int]],
) -> None:
    """Vocabulary expansion: give the embedding (and untied output) matrices the model's rows, each new id's
    row the mean of the base rows its text splits into (`splits`, from `jalm tokenizer extend`); rows
    without a split keep the model's own (seeded random) initialisation. A tied output layer is the
    embedding, so it gets the same mean rows; an untied one gets the mean of its own rows."""
    for their_name, our_name in names.items():
        old, current = theirs[their_name], ours[our_name]
        grown = current.detach().to("cpu", old.dtype).clone()
        grown[: min(len(grown), len(old))] = old[: len(grown)]
        for new_id, ids in splits.items():
            if (
                ids
            ):  # a piece whose text the base cannot encode keeps zeros (never happens with byte fallback)
                grown[new_id] = old[torch.tensor(ids)].float().mean(0).to(old.dtype)
        theirs[their_name] = grown


def load_weights(
    model: torch.nn.Module, model_dir: str | Path, hint: str = "", splits: dict[int, list[int]] | None = None
) -> list[str]:
    """Copy a directory's weights into `model` (same architecture and shapes). Names without the base
    prefix (GPT-2's `h.0...` for `transformer.h.0...`) are matched too; a tied output layer needs no
    tensor of its own. With `splits` (an extended tokenizer) the vocabulary matrices grow to the model's
    rows (grow_embeddings). Returns the buffers skipped; any other extra or missing tensor is an error."""
    path = Path(model_dir)
    theirs = read_state_dict(path)
    if splits is not None:
        vocab = {id(model.get_input_embeddings().weight)}
        if model.get_output_embeddings() is not None:
            vocab.add(id(model.get_output_embeddings().weight))
        base_prefix = getattr(model, "base_model_prefix", "") + "."
        names: dict[str, str] = {}
        for name, param in model.named_parameters(remove_duplicate=False):
            if id(param) in vocab:
                for candidate in (name, name.removeprefix(base_prefix)):
                    if candidate in theirs and candidate not in names:
                        names[candidate] = name
        grow_embeddings(theirs, dict(model.named_parameters(remove_duplicate=False)), names, splits)
    prefix = getattr(model, "base_model_prefix", "") + "."
    ours = model.state_dict()
    output = model.get_output_embeddings()
    tied = output is not None and output.weight is model.get_input_embeddings().weight
    wanted, used = {}, set()
    for name, tensor in ours.items():
        source = (
            name
            if name in theirs
            else name.removeprefix(prefix)
            if name.removeprefix(prefix) in theirs
            else None
        )
        if source is None:
            if tied and output is not None and tensor is output.weight:
                continue
            if tied and name.endswith(("lm_head.weight", "embed_out.weight")):
                continue
            raise JalmError(f"{path}: checkpoint lacks {name}")
        if theirs[source].shape != tensor.shape:
            raise JalmError(
                f"{path}: {source} is {tuple(theirs[source].shape)}, the model needs {tuple(tensor.shape)}"
                + (f"; {hint}" if hint else "")
            )
        wanted[name] = theirs[source]
        used.add(source)
    extra = [n for n in theirs if n not in used]
    unknown = [
        n
        for n in extra
        if not n.endswith(BUFFERS) and not (tied and n.endswith(("lm_head.weight", "embed_out.weight")))
    ]
    if unknown:
        raise JalmError(
            f"{path}: checkpoint tensor {unknown[0]} has no place in the model ({len(unknown)} such)"
        )
    model.load_state_dict(wanted, strict=False)  # strict on our side: every tensor was checked above
    if tied:
        model.tie_weights()
    return [n for n in extra if n.endswith(BUFFERS)]
