"""Run the real CLI with its stderr on a pseudo-terminal, to see what a person sees there
(progress bars draw only on a terminal)."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import threading
from pathlib import Path

_STYLE = re.compile(r"\x1b\[[0-9;]*m")
_MOVE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


def run_on_terminal(
    args: list[str], cwd: Path, columns: int = 160, timeout: float = 300
) -> tuple[int, str, str]:
    """``python -m campaign ARGS`` with stderr on a pty: (exit code, stdout, terminal text).

    The terminal text has its escape sequences removed, one redraw per line.
    """
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGN_")}
    environ.update(TERM="xterm-256color", COLUMNS=str(columns))
    environ.pop("NO_COLOR", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "campaign", *args], cwd=cwd, env=environ,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave,
    )
    os.close(slave)
    out: list[bytes] = []
    reader = threading.Thread(
        target=lambda: out.append(process.stdout.read() if process.stdout else b"")
    )
    reader.start()
    chunks: list[bytes] = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    code = process.wait(timeout=timeout)
    reader.join(timeout)
    stdout = b"".join(out).decode()
    screen = _MOVE.sub("\n", _STYLE.sub("", b"".join(chunks).decode("utf-8", "replace")))
    return code, stdout, "\n".join(line for line in screen.splitlines() if line.strip())


def bar_counts(screen: str, description: str) -> list[str]:
    """The ``done/total`` (or bare ``done``) counts drawn on ``description``'s bar lines."""
    counts = []
    for line in screen.splitlines():
        if line.strip().startswith(description):
            rest = line.strip()[len(description):]
            match = re.search(r"\s(\d[\d,]*(?:/[\d,?]+)?)\s", f" {rest} ")
            counts.append(match.group(1) if match else "")
    return counts
