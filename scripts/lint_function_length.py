"""python scripts/lint_function_length.py src benchmarks scripts

Fail when a function is longer than the house limit (60 lines, decorators and docstring included): a
function should be readable at once. `make lint` runs it beside ruff and import-linter.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

LIMIT = 60


def long_functions(root: Path, limit: int = LIMIT) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                if node.end_lineno - start + 1 > limit:
                    found.append(
                        f"{path}:{node.lineno}: {node.name} is {node.end_lineno - start + 1} lines (> {limit})"
                    )
    return found


def main() -> int:
    found = [line for root in sys.argv[1:] or ["src"] for line in long_functions(Path(root))]
    print("\n".join(found) or f"no function over {LIMIT} lines")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
