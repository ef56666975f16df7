"""README.md and docs/ name only what exists: every relative link a file of the repository, every quoted
`jalm <command> --flag` a real subcommand and a flag its own argparse parser defines (jalm.cli)."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from jalm.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
INLINE = re.compile(r"`(jalm [^`]+)`")


def _name(path: Path) -> str:
    return str(path.relative_to(REPO))


def relative_links(path: Path) -> list[str]:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    targets = [m.group(1) for m in LINK.finditer(text)]
    return [t for t in targets if not re.match(r"[a-z][a-z0-9+.-]*:", t) and not t.startswith("#")]


def test_the_documents_are_found():
    assert len(DOCS) > 5 and all(p.exists() for p in DOCS)
    assert sum(len(command_lines(p)) for p in DOCS) >= 20  # the command check has lines to check
    assert sum(len(relative_links(p)) for p in DOCS) >= 20


@pytest.mark.parametrize("path", DOCS, ids=_name)
def test_every_relative_link_names_an_existing_file(path):
    missing = []
    for target in relative_links(path):
        file = target.split("#", 1)[0]
        if file and not (path.parent / file).exists():
            missing.append(target)
    assert not missing, f"{_name(path)}: links to missing files: {missing}"


def command_lines(path: Path) -> list[str]:
    """Every `jalm ...` invocation quoted in a code block or an inline code span."""
    text = path.read_text(encoding="utf-8")
    found = []
    for block in FENCE.findall(text):
        for line in block.splitlines()[1:-1]:
            found += [
                piece for piece in re.split(r"&&|\|\||;|\|", line) if re.search(r"(^|[\s/])jalm\s", piece)
            ]
    found += [m.group(1) for m in INLINE.finditer(FENCE.sub("", text))]
    return found


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def problems_of(line: str, parser: argparse.ArgumentParser) -> list[str]:
    """What in `line` (`... jalm COMMAND [SUBCOMMAND] [args]`) the CLI does not define."""
    try:
        words = shlex.split(line, comments=True)
    except ValueError:  # an unbalanced quote: a line cut in the middle of an example
        words = line.split()
    start = next((i for i, w in enumerate(words) if w == "jalm" or w.endswith("/jalm")), None)
    if start is None:  # jalm named in a comment only
        return []
    words = words[start + 1 :]
    if not words or words[0].startswith("-"):  # `jalm --help`, `jalm --version`
        return [
            w for w in words if w.startswith("--") and w.split("=")[0] not in parser._option_string_actions
        ]
    if words[0].startswith("<") or words[0] in ("...", "…"):  # a placeholder: `jalm <stage> --help`
        return []
    current, rest = parser, words
    while rest and not rest[0].startswith("-") and (choices := _subparsers(current)):
        if rest[0] not in choices:
            return [f"no subcommand {rest[0]!r}"]
        current, rest = choices[rest[0]], rest[1:]
    flags = [w.split("=", 1)[0] for w in rest if w.startswith("--") and len(w) > 2]
    return [f"no flag {f}" for f in flags if f not in current._option_string_actions]


def test_the_command_check_can_fail():
    parser = build_parser()
    assert problems_of("jalm clean data --out x --workers 2", parser) == []
    assert problems_of("jalm tokenizer train x --vocab-size 8 --out y", parser) == []
    assert problems_of("jalm clean data --no-such-flag", parser) == ["no flag --no-such-flag"]
    assert problems_of(".venv/bin/jalm cleen data", parser) == ["no subcommand 'cleen'"]
    assert problems_of("jalm tokenizer trian x", parser) == ["no subcommand 'trian'"]
    assert problems_of("jalm export runs/train --out m --no-verfy", parser) == ["no flag --no-verfy"]


@pytest.mark.parametrize("path", DOCS, ids=_name)
def test_every_quoted_command_is_a_real_subcommand_with_real_flags(path):
    parser = build_parser()
    wrong = {line.strip(): p for line in command_lines(path) if (p := problems_of(line, parser))}
    assert not wrong, f"{_name(path)}: {wrong}"
