"""The model's homepage: a model card page, a playground and an OpenAI-compatible API (`jalm serve`), and the
same card as a Hugging Face README (`jalm card`).

facts.py reads what is known about a model directory; card.py turns it into one document rendered as
HTML and Markdown; engine.py runs generations on a worker thread; api.py holds the request shapes and
errors; app.py is the FastAPI application; command.py the two CLI commands. Nothing here imports torch,
transformers or FastAPI at import time of this package.
"""
