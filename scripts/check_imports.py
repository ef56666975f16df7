"""Fail when jalm's imports break the layering: run import-linter's contracts (pyproject.toml) and look for
circles between modules, which a layers contract between packages cannot see (filters.py ↔ langid.py).

Every import statement counts, the ones inside functions and under TYPE_CHECKING included: grimp reads
them all from the source, so a lazy import cannot hide a circle.

usage: python scripts/check_imports.py [SRC_DIR]   (default: src beside this script; run from the repo root)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def module_cycles(graph, package: str = "jalm") -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted. A package's
    `__init__` is the package's module: its re-exports are edges like any other import."""
    modules = sorted(graph.modules)
    edges = {
        m: {n for n in graph.find_modules_directly_imported_by(m) if n.startswith(package)} for m in modules
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(root: str) -> None:  # iterative Tarjan: the graph has ~250 modules, recursion would do too
        nonlocal counter
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))

    for module in modules:
        if module not in index:
            visit(module)
    return found


def main(argv: list[str]) -> int:
    root = Path(__file__).resolve().parent.parent
    src = Path(argv[1]).resolve() if len(argv) > 1 else root / "src"
    sys.path.insert(0, str(src))
    import grimp

    failed = False
    for cycle in module_cycles(grimp.build_graph("jalm", cache_dir=None)):
        print("import circle: " + " -> ".join(cycle), file=sys.stderr)
        failed = True
    config = src.parent / "pyproject.toml"
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint), str(config), "--no-cache"],
        cwd=src.parent,
        env={"PYTHONPATH": str(src), "PATH": str(lint.parent)},
    )
    return 1 if failed or result.returncode else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
