"""Fixtures for the tool tests: a workspace with links pointing inside and outside it."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    directory = tmp_path / "outside"
    directory.mkdir()
    (directory / "secret.txt").write_text("top secret\n")
    return directory


@pytest.fixture
def ws(tmp_path: Path, outside: Path) -> Path:
    """A workspace holding files, a .git dir, and links to inside and outside targets."""
    root = tmp_path / "ws"
    (root / "src" / "pkg").mkdir(parents=True)
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("needle in git\n")
    (root / "README.md").write_text("hello\nneedle one\nbye\n")
    (root / "src" / "main.py").write_text("import os\nprint('needle')\n")
    (root / "src" / "pkg" / "util.py").write_text("def f():\n    return 1\n")
    (root / "blob.bin").write_bytes(b"needle\0\x01\x02")
    (root / "link_out_file").symlink_to(outside / "secret.txt")
    (root / "link_out_dir").symlink_to(outside, target_is_directory=True)
    (root / "link_in").symlink_to(root / "README.md")
    return root
