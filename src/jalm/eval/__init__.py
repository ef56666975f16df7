"""Evaluation the way the seed's table was made: perplexity (+ bits per character), JSQuAD, AI王.

`evaluate(model_dir, ["ppl", "jsquad", "aio"], out="results.json")` runs the suite on any Hugging Face
causal-LM directory; `format_table([results, ...])` prints the seed's Markdown table. Per-task functions
(`evaluate_ppl`, `evaluate_jsquad`, `evaluate_aio`) take a model loaded once with `load_lm`.
Nothing here imports torch or transformers at import time.
"""

from jalm.eval.aio import evaluate_aio
from jalm.eval.jsquad import build_prompt, evaluate_jsquad
from jalm.eval.lm import LM, load_lm
from jalm.eval.perplexity import evaluate_ppl
from jalm.eval.suite import TASKS, evaluate
from jalm.eval.table import format_table, read_results

__all__ = [
    "LM",
    "TASKS",
    "build_prompt",
    "evaluate",
    "evaluate_aio",
    "evaluate_jsquad",
    "evaluate_ppl",
    "format_table",
    "load_lm",
    "read_results",
]
