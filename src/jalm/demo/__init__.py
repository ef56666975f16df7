"""`jalm demo`: every stage, small but real, on the bundled data, on a CPU, in a few minutes.

raw text (Wikipedia, Aozora Bunko, raw web pages) → clean → tokenizer → pack → train → export →
eval (dev perplexity and bits per character, JSQuAD and AI王 on a prefix, the JGLUE tasks on 10 questions)
→ generate → sft (instruction tuning on the bundled instruction set, one chat before and after, an
MT-Bench-ja smoke test) → dpo (a short preference-tuning stage, held-out reward accuracy before and after).
Everything lands under one work directory (default runs/demo); the base model at runs/demo/model, the
instruction-tuned one at runs/demo/sft-model, the preference-tuned one at runs/demo/dpo-model.
"""

from jalm.demo.run import (
    CHAT_QUESTION,
    PROMPT,
    STAGES,
    Demo,
    run_demo,
)

__all__ = [
    "PROMPT",
    "CHAT_QUESTION",
    "Demo",
    "STAGES",
    "run_demo",
]
