"""Evaluation the way the seed's table was made: perplexity (+ bits per character), JSQuAD, AI王, and the
seed's tasks asked as instructions for instruction-tuned models (jsquad-chat, aio-chat); JCommonsenseQA and
JNLI under jp-stable's published protocol and JSTS (jglue.py); Japanese MT-Bench with a judge (mtbench.py).

`evaluate(model_dir, ["ppl", "jsquad", "aio"], out="results.json")` runs the suite on any Hugging Face
causal-LM directory; a task's options are its config object (`PplConfig(data=..., stride=384)`,
`JsquadConfig(shots=0)`, ...; registry in `jalm.eval.tasks`), the model's loading options a `ModelOptions`.
`format_table([results, ...])` prints the seed's Markdown table. Per-task functions (`evaluate_ppl`,
`evaluate_jsquad`, `evaluate_aio`) take a model loaded once with `load_lm`.
Nothing here imports torch or transformers at import time.
"""

from jalm.eval.aio import evaluate_aio
from jalm.eval.jsquad import build_prompt, evaluate_jsquad
from jalm.eval.lm import LM, ModelOptions, load_lm
from jalm.eval.perplexity import evaluate_ppl
from jalm.eval.suite import evaluate
from jalm.eval.table import format_table, read_results
from jalm.eval.tasks import (
    REGISTRY,
    TASKS,
    AioChatConfig,
    AioConfig,
    JcqaConfig,
    JnliConfig,
    JsquadChatConfig,
    JsquadConfig,
    JstsConfig,
    PplConfig,
    TaskConfig,
)

__all__ = [
    "LM",
    "REGISTRY",
    "TASKS",
    "AioChatConfig",
    "AioConfig",
    "JcqaConfig",
    "JnliConfig",
    "JsquadChatConfig",
    "JsquadConfig",
    "JstsConfig",
    "ModelOptions",
    "PplConfig",
    "TaskConfig",
    "build_prompt",
    "evaluate",
    "evaluate_aio",
    "evaluate_jsquad",
    "evaluate_ppl",
    "format_table",
    "load_lm",
    "read_results",
]
