"""One interface for the tokenizers `jalm pack` reads: a SentencePiece model, or a Hugging Face
`tokenizer.json` (byte-level BPE bases such as Llama 3 and Qwen, whose directories have no SentencePiece
model). Both give ids without added specials; pack puts the end-of-sequence id between documents itself."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jalm.errors import JalmError


class JsonTokenizer:
    """tokenizers' `Tokenizer` from tokenizer.json, with SentencePieceProcessor's few methods pack uses."""

    def __init__(self, path: Path) -> None:
        from tokenizers import Tokenizer

        try:
            self.tokenizer = Tokenizer.from_file(str(path))
        except Exception as error:  # noqa: BLE001 - tokenizers raises plain Exceptions
            raise JalmError(f"{path}: not a tokenizer.json ({str(error).splitlines()[0][:200]})") from None
        self.eos = _eos_id(path.parent, self.tokenizer)

    def encode(self, texts: list[str], num_threads: int = 0) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch(texts, add_special_tokens=False)]

    def eos_id(self) -> int:
        return self.eos

    def get_piece_size(self) -> int:
        return self.tokenizer.get_vocab_size(with_added_tokens=True)


def _eos_id(directory: Path, tokenizer: Any) -> int:
    """The end-of-sequence token named by tokenizer_config.json (or special_tokens_map.json)."""
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        path = directory / name
        if path.is_file():
            token = json.loads(path.read_text(encoding="utf-8")).get("eos_token")
            token = token.get("content") if isinstance(token, dict) else token
            if isinstance(token, str) and tokenizer.token_to_id(token) is not None:
                return tokenizer.token_to_id(token)
    raise JalmError(f"{directory}: tokenizer.json without an eos_token named in tokenizer_config.json")


_LOADED: dict[str, Any] = {}


def load_encoder(model_file: str | Path) -> Any:
    """One loaded tokenizer per process and file (a pack worker encodes many shards with it)."""
    key = str(model_file)
    if key not in _LOADED:
        path = Path(model_file)
        if path.name == "tokenizer.json":
            _LOADED[key] = JsonTokenizer(path)
        else:
            from jalm.tokenizer.train import load_sentencepiece

            _LOADED[key] = load_sentencepiece(path)
    return _LOADED[key]
