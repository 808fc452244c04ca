"""Syntax gate for the Bicep files under infra/ (no Bicep compiler is available offline).

checkov exits 0 on a Bicep file it cannot parse, so `make infra-check` runs this before checkov. Every file
must pass two parsers:
- tree-sitter-bicep, a grammar that follows current Bicep syntax; every ERROR/MISSING node is reported with
  its line and column;
- pycep, the parser checkov itself uses: a file pycep cannot read is silently left out of the policy scan.

Usage: python infra/check_syntax.py [ROOT]  (ROOT: default the folder of this script). Exit 1 on errors.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import tree_sitter
import tree_sitter_bicep
from pycep import BicepParser

_LANGUAGE = tree_sitter.Language(tree_sitter_bicep.language())


def _syntax_errors(node: tree_sitter.Node) -> Iterator[tree_sitter.Node]:
    if node.is_error or node.is_missing:
        yield node
        return
    if node.has_error:
        for child in node.children:
            yield from _syntax_errors(child)


def tree_sitter_problems(path: Path) -> list[str]:
    source = path.read_bytes()
    tree = tree_sitter.Parser(_LANGUAGE).parse(source)
    problems = []
    for node in _syntax_errors(tree.root_node):
        line, column = node.start_point
        text = source[node.start_byte : node.end_byte].decode(errors="replace").splitlines()
        what = f"missing {node.type}" if node.is_missing else f"unexpected {(text or [''])[0][:60]!r}"
        problems.append(f"{path}:{line + 1}:{column + 1}: tree-sitter-bicep: {what}")
    return problems


def pycep_problems(path: Path) -> list[str]:
    try:
        BicepParser().parse(file_path=path)
    except Exception as error:  # pycep raises lark's many exception types: report any of them
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return [f"{path}: pycep (checkov's parser): {first_line}"]
    return []


def main(argv: list[str]) -> int:
    root = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent
    files = sorted(root.rglob("*.bicep"))
    if not files:
        print(f"no .bicep files under {root}", file=sys.stderr)
        return 1
    problems = [problem for path in files for problem in tree_sitter_problems(path) + pycep_problems(path)]
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"bicep syntax: {len(files)} files, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
