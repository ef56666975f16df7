"""The model card: one document built from `ModelFacts`, rendered as the web page's HTML and as the Hub README.

The card is a list of sections, each a list of simple blocks (paragraph, table, code, image, list), so
the page and the README say exactly the same things. Whatever is unknown is said to be unknown, with the
file that would have told.

blocks.py holds the blocks and their formatting; sections.py builds the sections from the facts;
render.py turns them into Markdown and HTML (and draws the loss plot); hub.py writes the Hub README with
its YAML metadata.
"""

from jalm.serve.card.blocks import DASH, PROMPT, UNKNOWN, Bullets, Code, Image, Para, Section, Table
from jalm.serve.card.hub import front_matter, guess_datasets, write_readme
from jalm.serve.card.render import draw_loss, to_html, to_markdown
from jalm.serve.card.sections import LINE_REFERENCE, build_card, usage_snippet

__all__ = [
    "DASH",
    "LINE_REFERENCE",
    "PROMPT",
    "UNKNOWN",
    "Bullets",
    "Code",
    "Image",
    "Para",
    "Section",
    "Table",
    "build_card",
    "draw_loss",
    "front_matter",
    "guess_datasets",
    "to_html",
    "to_markdown",
    "usage_snippet",
    "write_readme",
]
