"""Run under a given transformers version (tests pass PYTHONPATH): load a model directory the way
LINE's model card does and print, as JSON, what the tests compare across transformers majors."""

import json
import sys

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

model_dir, prompt = sys.argv[1], sys.argv[2]
model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
tokenizer = AutoTokenizer.from_pretrained(model_dir, use_fast=False)
ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt").input_ids
with torch.no_grad():
    greedy = model.generate(ids, max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    logits = model(ids).logits[0, -1]
config = model.config
rope = getattr(config, "rope_parameters", None) or {}
print(
    json.dumps(
        {
            "transformers": transformers.__version__,
            "class": type(model).__name__,
            "prompt_ids": ids[0].tolist(),
            "greedy": greedy[0].tolist(),
            "text": tokenizer.decode(greedy[0], skip_special_tokens=True),
            "logits": logits[:50].tolist(),
            "rotary": getattr(config, "rotary_pct", None) or rope.get("partial_rotary_factor"),
        }
    )
)
