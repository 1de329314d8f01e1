"""Python examples in the documentation run as written.

A block preceded by an ``<!-- illustrative ... -->`` comment is exempt (it names code the reader writes).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"(<!-- illustrative[^>]*-->\n)?```python\n(.*?)```", re.DOTALL)


def _examples() -> list[tuple[str, str]]:
    found = []
    for path in sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *ROOT.glob("packages/*/README.md")]):
        for index, match in enumerate(BLOCK.finditer(path.read_text())):
            if match.group(1) is None:
                found.append((f"{path.relative_to(ROOT)}#{index}", match.group(2)))
    return found


EXAMPLES = _examples()


def test_documentation_has_examples() -> None:
    assert len(EXAMPLES) >= 2


@pytest.mark.parametrize(("where", "code"), EXAMPLES, ids=[where for where, _ in EXAMPLES])
def test_example_runs(where: str, code: str, capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(code, where, "exec"), {"__name__": "__docs__"})
