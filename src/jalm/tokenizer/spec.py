"""What a jalm tokenizer is, shared by training and the Hugging Face translation: file name, special pieces,
the score grid and the characters every model holds."""

SPIECE_MODEL = "spiece.model"
# LINE's special pieces, in id order 0..6.
SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<pad>", "<sep>", "<mask>", "<cls>")
# "\n" is a piece of its own (id 7), never a byte-fallback token: generation and evaluation stop at the
# newline token, and a real piece decodes to "\n" alone, in SentencePiece and in transformers alike.
NEWLINE = "\n"
# Piece scores are rounded to multiples of 1/16 (see _finalize_model): sums of such scores are exact in
# SentencePiece's float32 up to 2**20 (about 100k tokens in one call) and in tokenizers' float64, so
# both see ties as ties and break them by the same rule. On data/dev, 1/16 changes no token count and
# the segmentation of 1% of lines (between equally likely alternatives).
SCORE_GRID = 16
# Every printable ASCII character and the space mark are pieces even if the corpus lacks them: URLs, code
# and markup stay readable, and the pieces SentencePiece never matches in text (<s>, <0x41>, ...) can
# always be spelled with ordinary pieces (see the module docstring).
REQUIRED_CHARS = "▁" + "".join(chr(c) for c in range(0x21, 0x7F))
