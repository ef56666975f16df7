"""jalm: build Japanese large language models from raw web text to a served model."""

__version__ = "0.1.0"
