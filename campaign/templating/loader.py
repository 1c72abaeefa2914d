"""Where template files come from: ``<set>/<locale>/<file>`` and ``_layouts/<file>``.

Every file it reads is a plain file inside the templates folder: it walks the name one
folder at a time from the folder's real path and refuses symbolic links (at any
level), devices, FIFOs and sockets before opening them (:func:`read_template_file`),
so a ``footer.txt`` linked to ``/proc/self/environ`` can never reach a message. This
module reads template files, so it is the one adapter of ``templating``.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jinja2 import BaseLoader
from jinja2.exceptions import SecurityError, TemplateNotFound

LAYOUTS_DIR = "_layouts"
_SET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# No message template comes near this; a bigger file is refused before it is read.
MAX_TEMPLATE_FILE_BYTES = 1_000_000
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class TemplateFileRefused(SecurityError):
    """A template path is a symbolic link, a device, a FIFO, a socket or too large."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(
            f"{name} {reason} (template files must be plain files inside the templates folder)"
        )


def describe_file_kind(mode: int) -> str:
    """What a non-regular file is, in words: ``a symbolic link``, ``a FIFO``, ..."""
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a regular file"


def _refusal(name: str, shown: str, mode: int) -> TemplateFileRefused:
    kind = describe_file_kind(mode)
    if shown == name:
        return TemplateFileRefused(name, f"is {kind}")
    return TemplateFileRefused(name, f"lies under {shown}, which is {kind}")


def read_template_file(
    root: Path, name: str, max_bytes: int = MAX_TEMPLATE_FILE_BYTES
) -> tuple[str, float]:
    """The text and mtime of template ``name`` (``a/b/c.txt``) under the folder ``root``.

    Walks ``name`` one part at a time with directory file descriptors from ``root``'s
    real path: every part is checked with ``lstat`` before it is opened and opened
    with ``O_NOFOLLOW``, the file must be a regular file (checked again on the open
    descriptor) of at most ``max_bytes``. Nothing is followed, so nothing can be
    swapped for a link between the check and the read.

    Raises:
        TemplateNotFound: a part does not exist or a folder part is a file.
        TemplateFileRefused: a part is a symbolic link, device, FIFO or socket, or the
            file is larger than ``max_bytes``.
    """
    check_template_name(name)
    parts = name.split("/")
    try:
        fd = os.open(os.path.realpath(root), os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        raise TemplateNotFound(name) from None
    try:
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            shown = "/".join(parts[: index + 1])
            try:
                mode = os.lstat(part, dir_fd=fd).st_mode
            except (FileNotFoundError, NotADirectoryError):
                raise TemplateNotFound(name) from None
            if stat.S_ISLNK(mode) or not (stat.S_ISREG(mode) if last else stat.S_ISDIR(mode)):
                if not last and stat.S_ISREG(mode):
                    raise TemplateNotFound(name)
                raise _refusal(name, shown, mode)
            flags = os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC
            flags |= _O_NONBLOCK if last else _O_DIRECTORY  # never block on a FIFO
            try:
                child = os.open(part, flags, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
                    # Swapped for a link (or else) since the lstat above.
                    raise _refusal(name, shown, stat.S_IFLNK) from None
                raise
            os.close(fd)
            fd = child
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _refusal(name, name, info.st_mode)
        if info.st_size > max_bytes:
            raise TemplateFileRefused(name, f"is larger than {max_bytes} bytes")
        with os.fdopen(os.dup(fd), "rb") as file:
            data = file.read(max_bytes + 1)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise TemplateFileRefused(name, f"is larger than {max_bytes} bytes")
    try:
        return data.decode("utf-8"), info.st_mtime
    except UnicodeDecodeError as exc:
        raise TemplateFileRefused(name, f"is not UTF-8 text ({exc.reason})") from None


def _open_parent(root: Path, parts: list[str]) -> int:
    """A descriptor of the folder holding ``parts[-1]``, walked from ``root``'s real path
    one plain folder at a time (no link followed); the caller closes it."""
    name = "/".join(parts)
    fd = os.open(os.path.realpath(root), os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
    try:
        for index, part in enumerate(parts[:-1]):
            shown = "/".join(parts[: index + 1])
            try:
                mode = os.lstat(part, dir_fd=fd).st_mode
            except (FileNotFoundError, NotADirectoryError):
                raise TemplateNotFound(name) from None
            if not stat.S_ISDIR(mode):
                raise _refusal(name, shown, mode)
            try:
                child = os.open(part, os.O_RDONLY | _O_NOFOLLOW | _O_DIRECTORY | _O_CLOEXEC,
                                dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
                    raise _refusal(name, shown, stat.S_IFLNK) from None
                raise
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_template_file(
    root: Path, name: str, text: str, max_bytes: int = MAX_TEMPLATE_FILE_BYTES
) -> None:
    """Replace the text of the existing template file ``name`` under ``root`` atomically.

    The same walk as :func:`read_template_file`: ``name`` must be a template name
    (no ``..``, no absolute path, no hidden part) whose every folder is a plain folder
    and whose file already exists as a plain file, none of them a link. The new text
    goes to a hidden temporary file beside it (created exclusively, never through a
    link), is flushed to disk, then renamed over the old one: a reader sees the old
    file or the new one, never half of either. The file keeps its permissions.

    Raises:
        TemplateNotFound: a bad name, or the file or a folder does not exist.
        TemplateFileRefused: a part is a link or not a plain file/folder, or the text
            is over ``max_bytes``.
    """
    check_template_name(name)
    data = text.encode("utf-8")
    if len(data) > max_bytes:
        raise TemplateFileRefused(name, f"would be larger than {max_bytes} bytes")
    parts = name.split("/")
    try:
        fd = _open_parent(root, parts)
    except (FileNotFoundError, NotADirectoryError):
        raise TemplateNotFound(name) from None
    last = parts[-1]
    temporary = f".{last}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    try:
        try:
            info = os.lstat(last, dir_fd=fd)
        except FileNotFoundError:
            raise TemplateNotFound(name) from None
        if not stat.S_ISREG(info.st_mode):
            raise _refusal(name, name, info.st_mode)
        out = os.open(
            temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC,
            stat.S_IMODE(info.st_mode), dir_fd=fd,
        )
        try:
            with os.fdopen(out, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, last, src_dir_fd=fd, dst_dir_fd=fd)
        except BaseException:
            try:
                os.unlink(temporary, dir_fd=fd)
            except OSError:
                pass
            raise
        os.fsync(fd)
    finally:
        os.close(fd)


class TemplateSetLoader(BaseLoader):
    """Loads ``<set>/<locale>/<file>`` and ``_layouts/<file>`` under one folder.

    Absolute paths, ``..``, backslashes and hidden files are refused before the file
    system is touched; then :func:`read_template_file` refuses anything that is not a
    plain file reached without a link. The folder itself may be a link (it is
    resolved once, when the loader is made).
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(os.path.realpath(root))

    def get_source(
        self, environment: Any, template: str
    ) -> tuple[str, str, Callable[[], bool] | None]:
        source, mtime = read_template_file(self.root, template)
        filename = str(self.root / template)

        def uptodate() -> bool:
            try:
                return os.lstat(filename).st_mtime == mtime
            except OSError:
                return False

        return source, filename, uptodate


def check_template_name(name: str) -> None:
    """Refuse names that could leave the templates folder.

    Raises:
        TemplateNotFound: absolute, parent (``..``), backslash, hidden or empty parts.
    """
    parts = name.split("/")
    if (
        not name
        or "\\" in name
        or name.startswith("/")
        or any(not _SEGMENT.match(part) and part != LAYOUTS_DIR for part in parts)
        or ".." in parts
    ):
        raise TemplateNotFound(f"{name} (template names are <set>/<locale>/<file>)")


def template_set_exists(templates_dir: Path, name: str) -> bool:
    """Whether ``name`` is a template set (a folder) under ``templates_dir``.

    Only plain names qualify (letters, digits, ``_``, ``-``), never ``_layouts`` or a
    path, so a config value can never point outside the folder.
    """
    if not _SET_NAME.match(name) or name == LAYOUTS_DIR:
        return False
    folder = templates_dir / name
    return folder.is_dir() and not folder.is_symlink()


def list_template_sets(templates_dir: Path) -> list[str]:
    """Names of the template sets under ``templates_dir``, sorted."""
    if not templates_dir.is_dir():
        return []
    return sorted(
        p.name for p in templates_dir.iterdir() if template_set_exists(templates_dir, p.name)
    )


def available_locales(templates_dir: Path, template_set: str) -> list[str]:
    """Locale folders of one template set, sorted (e.g. ``['en', 'zh-CN']``)."""
    folder = templates_dir / template_set
    if not template_set_exists(templates_dir, template_set):
        return []
    return sorted(
        p.name
        for p in folder.iterdir()
        if p.is_dir() and not p.is_symlink() and _SEGMENT.match(p.name)
    )


def display_root_for(templates_dir: Path) -> str:
    """How template paths are shown: relative to the working directory when inside it."""
    resolved = templates_dir.resolve()
    try:
        return str(resolved.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(resolved)
