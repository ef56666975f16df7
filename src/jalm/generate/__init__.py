"""`jalm generate`: sample continuations from any Hugging Face causal-LM directory, streamed as they are made.

The Python API takes the arguments of LINE's pipeline call and returns what the pipeline returns:

    generate("runs/demo/model", "おはようございます、今日の天気は", max_length=30, do_sample=True,
             num_return_sequences=5, seed=101)

gives the same five texts (prompt included) as `set_seed(101)` + `pipeline("text-generation")(...)` with
those arguments. One code path serves the terminal and the Python API: `complete()` runs `model.generate`
with a streamer that decodes every sequence of the batch incrementally (byte-fallback pieces are held back
until they form whole characters), applies stop strings, and reports text deltas. The web server decodes
concurrent requests together (`jalm.generate.batched`, continuous batching) through the same streamer.

`chat()` and `jalm generate --chat` answer a conversation instead: the prompt ids come from
`jalm.chat.chat_prompt_ids` (the model's chat template, as the server's /v1/chat/completions uses it).
"""

from jalm.generate.generation import (
    CONTEXT_KEYS,
    DEFAULT_CONTEXT,
    DEFAULT_MAX_NEW_TOKENS,
    PIPELINE_TEMPERATURE,
    PROMPT,
    BatchStreamer,
    Completion,
    IncrementalDecoder,
    Sampling,
    byte_piece_ids,
    chat,
    check_sampling,
    complete,
    context_length,
    encode_prompt,
    generate,
    load,
)

__all__ = [
    "BatchStreamer",
    "CONTEXT_KEYS",
    "Completion",
    "DEFAULT_CONTEXT",
    "DEFAULT_MAX_NEW_TOKENS",
    "IncrementalDecoder",
    "PIPELINE_TEMPERATURE",
    "PROMPT",
    "Sampling",
    "byte_piece_ids",
    "chat",
    "check_sampling",
    "complete",
    "context_length",
    "encode_prompt",
    "generate",
    "load",
]
