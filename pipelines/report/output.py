"""Where the report may be written: never over something that is not a report it wrote.

`--output` is a path typed by a person (or a script): it must not turn the warehouse, a device,
a directory or the target of a symlink into a report. An existing file is replaced only when it
is a regular file carrying the report's generator mark (or, for the funnel picture, a PNG
beside such a report); the new content goes to a fresh temporary file in the same directory and
replaces the old one in one rename, so a reader never sees half a file.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from pipelines.report.page import GENERATOR

MARK = f'<meta name="generator" content="{GENERATOR}">'.encode()
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class UnsafeOutput(ValueError):
    """The output path is not one the report may write; the message says why."""


def check_output(path: Path, *, create_parent: bool, protected: tuple[Path, ...] = ()) -> Path:
    """The absolute path to write, or UnsafeOutput. `path` itself is never resolved through a
    symlink: a symlink is refused, whatever it points at."""
    path = Path(os.path.abspath(path))
    for other in protected:
        if other.exists() and path.exists() and os.path.samefile(path, other):
            raise UnsafeOutput(f"{path} is the warehouse; choose another --output")
    parent = path.parent
    if not parent.is_dir():
        if not create_parent:
            raise UnsafeOutput(f"directory {parent} does not exist; create it or choose another")
        parent.mkdir(parents=True, exist_ok=True)
    _check_existing(path, MARK, "a report written by trackflow")
    return path


def check_picture(path: Path) -> Path:
    """The funnel picture beside the report: replaced only if it is a PNG file."""
    _check_existing(path, PNG_SIGNATURE, "a PNG picture")
    return path


def _check_existing(path: Path, mark: bytes, what: str) -> None:
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode):
        raise UnsafeOutput(f"{path} is a symlink; refusing to write through it")
    if not stat.S_ISREG(info.st_mode):
        raise UnsafeOutput(f"{path} exists and is not a regular file; choose another path")
    with path.open("rb") as existing:
        head = existing.read(4096)
    found = head.startswith(mark) if mark == PNG_SIGNATURE else mark in head
    if not found:
        raise UnsafeOutput(f"{path} exists and is not {what}; remove it or choose another path")


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a fresh temporary file in the same directory."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
