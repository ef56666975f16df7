"""Encode and decode texts with whatever transformers is importable; print the results as JSON.

Run by tests/test_tokenizer.py under transformers 4.x (PYTHONPATH=<venv>/tf4) to prove that our tokenizer
files load there too:

    PYTHONPATH=.venv/tf4 .venv/bin/python tests/tf_compat_probe.py TOKENIZER_DIR < texts.json

stdin holds a JSON list of texts; stdout gets {"transformers": version, "slow": result, "fast": result},
where a result is {"class", "ids", "decoded"} or {"error"}: a failure to load is reported, not raised,
so the caller sees which way failed and why.
"""

from __future__ import annotations

import json
import sys


def probe(directory: str, texts: list[str], use_fast: bool) -> dict:
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(directory, use_fast=use_fast)
        ids = [tokenizer.encode(text, add_special_tokens=False) for text in texts]
        decoded = [tokenizer.decode(row, skip_special_tokens=False) for row in ids]
    except Exception as error:  # reported to the caller, which decides what a failure means
        return {"error": f"{type(error).__name__}: {error}"}
    return {"class": type(tokenizer).__name__, "ids": ids, "decoded": decoded}


def main() -> None:
    import transformers

    texts = json.load(sys.stdin)
    result = {"transformers": transformers.__version__}
    for name, use_fast in (("slow", False), ("fast", True)):
        result[name] = probe(sys.argv[1], texts, use_fast)
    json.dump(result, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
