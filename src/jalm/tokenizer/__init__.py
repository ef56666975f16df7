"""Tokenizer stage: train a SentencePiece unigram model and write Hugging Face tokenizer files beside it.

The model follows LINE's japanese-large-lm tokenizer: unigram, byte fallback, no pre-tokenization (raw
sentences, no MeCab), special ids 0 ``<unk>``, 1 ``<s>``, 2 ``</s>``, 3 ``<pad>``, 4 ``<sep>``,
5 ``<mask>``, 6 ``<cls>``. Normalisation is identity and there is no dummy prefix, so "▁" stands only for
a real space and decoding gives back the input exactly.

Layout of a tokenizer directory, and why it differs from LINE's release:

- ``spiece.model``: the SentencePiece model itself, for SentencePiece users (and for `jalm pack`).
- ``tokenizer.json``: an exact `tokenizers` translation of the same model (Unigram with the same pieces
  and scores and ``byte_fallback``, a normalizer that only replaces " " with "▁", no pre-tokenizer, and
  a decoder ByteFallback → Fuse → Replace("▁", " ")), plus ``tokenizer_config.json`` with
  ``tokenizer_class: PreTrainedTokenizerFast`` and ``special_tokens_map.json``.

LINE shipped only ``spiece.model`` with ``tokenizer_class: T5Tokenizer``, which transformers converts
to a fast tokenizer itself: under 4.x with ``use_fast=True`` and under 5.x whatever the flag, and that
conversion has no byte fallback, so emoji and rare kanji become ``<unk>`` (README.md, "Facts we honour";
no test in this repository loads LINE's layout). With an explicit ``tokenizer.json`` both majors, slow
and fast flag alike, load the same exact tokenizer: tests/test_tokenizer.py compares ids and decodes
with SentencePiece's on a few hundred bundled texts under transformers 4.x and 5.x. Three details make
it exact on *any* text, not only on typical text:

- Special tokens are split like ordinary text (``split_special_tokens``): SentencePiece never turns
  the characters ``</s>`` in a document into the id 2, so neither may we (it would also let web text
  inject end-of-document marks).
- Pieces SentencePiece never matches in text (``<unk>``, control symbols, the byte pieces
  ``<0x00>``..``<0xFF>``) are in the Unigram vocabulary only so that ids map to them; they get a score
  so low that Viterbi can never prefer them to spelling the same characters with ordinary pieces.
  Training therefore requires every printable ASCII character (and "▁") as a piece (``required_chars``).
- Scores are rounded to multiples of 1/16 after training. SentencePiece adds scores in float32,
  tokenizers in float64; where two segmentations use the same pieces in another order (runs of "　",
  "ー" or spaces, common in Aozora and web text) the unrounded sums differ in the last bits and each
  library picks another one. On the grid both sums are exact, and both break ties the same way.
"""

from jalm.tokenizer.hf_files import exactness_problems, write_hf_tokenizer_files
from jalm.tokenizer.sentences import split_sentences
from jalm.tokenizer.train import (
    SPECIAL_TOKENS,
    SPIECE_MODEL,
    STATS_FILE,
    TRAINER_BYTES_PER_CHAR,
    chars_per_token,
    check_trainer_memory,
    load_sentencepiece,
    sample_sentences,
    tokenizer_model_file,
    train_tokenizer,
)

__all__ = [
    "SPECIAL_TOKENS",
    "SPIECE_MODEL",
    "STATS_FILE",
    "TRAINER_BYTES_PER_CHAR",
    "chars_per_token",
    "check_trainer_memory",
    "exactness_problems",
    "load_sentencepiece",
    "sample_sentences",
    "split_sentences",
    "tokenizer_model_file",
    "train_tokenizer",
    "write_hf_tokenizer_files",
]
