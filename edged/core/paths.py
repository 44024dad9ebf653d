"""Paths the config names, and the private, link-refusing way the daemon keeps its own files.

Folders the config names (``device.data_dir``, ``output.dir``) may themselves be symbolic links the
operator made; what edged keeps inside them never is. A link found where edged keeps a file or
folder is refused with :class:`PlantedLinkError` (its message names the path), never followed or
written through. What edged creates is private: folders 0700, files 0600, whatever the umask.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterable
from pathlib import Path

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def resolve_path(value: str) -> Path:
    """Resolve a path from the config: absolute as is, else relative to the working directory."""
    p = Path(value)
    return p if p.is_absolute() else Path.cwd() / p


SHIPPED_MODELS = Path(__file__).resolve().parent.parent / "models"
"""The models installed with edged (package data ``edged/models``; in a source checkout a link to the
repository's ``models/``)."""


def model_file(value: str, base: Path | None = None) -> Path:
    """A model ``file`` from the config: absolute as is; ``models/NAME`` is the model ``NAME`` shipped
    with edged unless the config file's folder ``base`` holds ``models/NAME``; any other relative path
    (or a shipped name not shipped) is in ``base``, the working directory when there is no config file."""
    p = Path(value)
    if p.is_absolute():
        return p
    here = (base if base is not None else Path.cwd()) / p
    if base is not None and here.exists():
        return here
    if p.parts[:1] == ("models",) and len(p.parts) > 1:
        shipped = SHIPPED_MODELS.joinpath(*p.parts[1:])
        if shipped.exists():
            return shipped
    return here


_REASONS = {
    errno.EACCES: "permission denied (run it as a user who may write there, e.g. with sudo)",
    errno.EPERM: "operation not permitted (run it as a user who may write there, e.g. with sudo)",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "it is a folder",
    errno.EEXIST: "something of that name is already there",
    errno.EROFS: "the file system is read-only",
    errno.ENOSPC: "no space left on the device",
    errno.ENOENT: "a folder on the way does not exist",
}


def os_reason(err: OSError) -> str:
    """Why an operating-system call failed, in words (no errno number)."""
    if err.errno in _REASONS:
        return _REASONS[err.errno]
    return (err.strerror or str(err)).lower()


class PlantedLinkError(OSError):
    """A symbolic link (or another non-regular file) sits where edged keeps one of its own files."""

    def __init__(self, path: Path, what: str = "a symbolic link") -> None:
        super().__init__(errno.ELOOP, f"{path} is {what}; refusing to follow or write through it (remove it)")
        self.path = path

    def __str__(self) -> str:
        return str(self.strerror)


def refuse_links(paths: Iterable[Path]) -> None:
    """Raise :class:`PlantedLinkError` for the first of ``paths`` that is a symbolic link."""
    for path in paths:
        if os.path.islink(path):
            raise PlantedLinkError(path)


def private_dir(path: Path, *, configured: bool = False) -> Path:
    """``path`` as a folder: missing folders are created 0700 (the existing ones are kept as they are).

    A folder edged keeps inside another must not be a symbolic link (:class:`PlantedLinkError`);
    one the config names (``configured``) may be, as may every folder above."""
    missing: list[Path] = []
    here = path
    while not os.path.lexists(here) and here != here.parent:
        missing.append(here)
        here = here.parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, PRIVATE_DIR)
        except FileExistsError:
            continue
        os.chmod(folder, PRIVATE_DIR)  # mkdir's mode is masked by the umask
    if not configured and os.path.islink(path):
        raise PlantedLinkError(path)
    if not path.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"{path} is not a folder")
    return path


def open_private(path: Path, flags: int) -> int:
    """``os.open`` that never follows a link at ``path``: created files are 0600; an existing file must
    be a regular file, and loses any group or other permission bits."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, PRIVATE_FILE)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise PlantedLinkError(path) from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise PlantedLinkError(path, "not a regular file")
        if st.st_mode & 0o077:
            with contextlib.suppress(PermissionError):  # another owner's file: read as it is
                os.fchmod(fd, PRIVATE_FILE)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def create_private(path: Path) -> int:
    """A new file at ``path``, 0600, opened for writing; whatever was there (a stale temp file, a
    planted link) is removed first, never written through."""
    try:
        return open_private(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        os.unlink(path)  # removes a link itself, not what it points to
        return open_private(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)


def write_private(path: Path, data: bytes, *, fsync: bool = False, temp: Path | None = None) -> None:
    """Replace ``path`` atomically with ``data``: a private temp file beside it (``.<name>.tmp`` unless
    ``temp`` names one), then a rename (a link at ``path`` is replaced, never followed)."""
    temp = temp or path.with_name(f".{path.name}.tmp")
    fd = create_private(temp)
    try:
        with os.fdopen(fd, "wb", closefd=False) as f:
            f.write(data)
            f.flush()
            if fsync:
                os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(temp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
