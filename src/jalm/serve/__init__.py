"""The model's homepage: a model card page, a playground and an OpenAI-compatible API (`jalm serve`), and the
same card as a Hugging Face README (`jalm card`).

facts.py reads what is known about a model directory; card/ turns it into one document rendered as
HTML and Markdown (and the Hub README's metadata); engine.py runs every request on one model thread,
decoded together (continuous batching); api.py holds the request shapes and errors; openai_routes.py the
OpenAI-compatible /v1 routes (chat prompts from jalm.chat); app.py builds the FastAPI application; page.py
the homepage; command.py the two CLI commands.
Nothing here imports torch, transformers or FastAPI at import time of this package.
"""
