"""Render and encode conversations with whatever transformers is importable; print the results as JSON.

Run by tests/test_sft.py under transformers 5.x and 4.x (PYTHONPATH=<venv>/tf4):

    .venv/bin/python tests/chat_template_probe.py MODEL_DIR < conversations.json

stdin holds a JSON list of message lists; stdout gets {"transformers": version, "slow": result,
"fast": result}, a result being {"class", "text", "ids"} (apply_chat_template with
add_generation_prompt, as a string and as ids) or {"error"}.
"""

from __future__ import annotations

import json
import sys


def probe(directory: str, conversations: list, use_fast: bool) -> dict:
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(directory, use_fast=use_fast)
        texts, ids = [], []
        for messages in conversations:
            texts.append(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
            encoded = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
            encoded = encoded["input_ids"] if hasattr(encoded, "keys") else encoded
            ids.append([int(i) for i in encoded])
    except Exception as error:  # reported to the caller, which decides what a failure means
        return {"error": f"{type(error).__name__}: {error}"}
    return {"class": type(tokenizer).__name__, "text": texts, "ids": ids}


def main() -> None:
    import transformers

    conversations = json.load(sys.stdin)
    result = {"transformers": transformers.__version__}
    for name, fast in (("slow", False), ("fast", True)):
        result[name] = probe(sys.argv[1], conversations, fast)
    json.dump(result, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
