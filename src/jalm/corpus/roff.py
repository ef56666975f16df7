"""Raw roff/troff source (man pages as written, not as rendered): a filter on its request lines.

A man page's source is mostly Japanese when its translation is, so the Japanese-share and language
rules let it through, and its markup (`.SH`, `.B`, `\\fB`, `.\\"` comments) is too sparse per character
for the markup rule. Its request lines give it away: a line that starts with a dot and a known request
name (.TH .SH .PP .B .I .BR .IP .TP .nf .fi .if ...) or a comment (`.\\"`, `'\\"`). Prose almost never
starts a line like that; a list of file extensions (`.js`, `.py`) does not use request names.
"""

from __future__ import annotations

import re
from typing import Any

from jalm.corpus.features import Features, ratio
from jalm.corpus.registry import register

_REQUESTS = (
    "TH SH SS PP LP P IP TP HP RS RE B I BR BI IR RB RI SM SB UR UE MT ME EX EE SY YS OP TS TE TQ "
    "nf fi br sp in ti ft ps de ds nr if ie el so ig mso na ad ne bp ce ll pl ta tr rm als"
).split()
_REQUEST_LINE = re.compile(
    r"^[.'](?:\\\"|(?:" + "|".join(sorted(_REQUESTS, key=len, reverse=True)) + r")(?=[\s\\]|$))", re.MULTILINE
)


@register("roff")
def roff(doc: Features, p: dict[str, Any]) -> str | None:
    """Share of lines that are roff requests or comments."""
    if not doc.has_line_starting_with(".") and not doc.has_line_starting_with("'"):
        return None  # no line starts with a dot or a quote: no regex scan
    n_requests = len(_REQUEST_LINE.findall(doc.text))
    share = ratio(n_requests, len(doc.lines))
    if n_requests >= p["min_lines"] and share > p["max_line_share"]:
        return f"roff: {n_requests} of {len(doc.lines)} lines are roff requests ({share:.2f} > {p['max_line_share']})"
    return None
