"""Output folders: checked before any work, so that a bad ``--out`` never costs a run.

:func:`check_output_dir` is called by the commands that write results (``lazysi sample``,
``lazysi bench``) before they load a model or sample; it creates nothing.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["OutputDirError", "check_output_dir"]


class OutputDirError(ValueError):
    """The output folder cannot be used (an existing file, an unwritable folder); names the path."""


def _nearest_existing(path: Path) -> Path:
    p = path
    while not p.exists() and not p.is_symlink():
        if p.parent == p:
            break
        p = p.parent
    return p


def check_output_dir(path: str | os.PathLike[str]) -> Path:
    """Check that ``path`` is, or can be created as, a folder that this process can write into.

    Returns the path (absolute). Raises :class:`OutputDirError` naming the path when it (or one of
    its ancestors) is an existing non-folder, a dangling link, or when the folder itself (if it
    exists) or its nearest existing ancestor (if not) does not accept a new file. Writability is
    tested by creating and removing a temporary file there, not only by permission bits, so that
    read-only file systems and ACLs are caught too (the permission bits alone say nothing for root).
    Nothing is left behind: missing folders are not created.
    """
    p = Path(path).expanduser()
    p = p if p.is_absolute() else Path.cwd() / p
    if p.is_symlink() and not p.exists():
        raise OutputDirError(f"output folder {p} is a dangling symbolic link")
    if p.exists() and not p.is_dir():
        raise OutputDirError(f"output folder {p} exists and is not a folder")
    base = _nearest_existing(p)
    if not base.is_dir():
        raise OutputDirError(f"cannot create output folder {p}: {base} is not a folder")
    where = "output folder" if base == p else f"cannot create output folder {p}: its parent"
    if not os.access(base, os.W_OK | os.X_OK):
        raise OutputDirError(f"{where} {base} is not writable")
    try:
        fd, probe = tempfile.mkstemp(prefix=".lazysi-write-test-", dir=base)
    except OSError as exc:
        raise OutputDirError(f"{where} {base} is not writable ({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(probe)
    return p
