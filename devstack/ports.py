"""Whether the ports the stack will bind are free, and which process holds one that is not.

Read from /proc (Linux): the listening sockets in /proc/net/tcp{,6}, then the process whose
file descriptors include that socket. Another user's process cannot be named without root.
"""

from __future__ import annotations

import contextlib
import errno
import socket
from pathlib import Path

_LISTEN = "0A"


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether binding `host:port` works right now."""
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def _listening_inodes(port: int, proc: Path) -> set[str]:
    inodes = set()
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in (proc / "net" / table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == _LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(fields[9])
    return inodes


def port_holder(port: int, proc: Path = Path("/proc")) -> str:
    """Who listens on `port`: "pid 123 (prometheus --config.file=…)", or what can be said."""
    targets = {f"socket:[{inode}]" for inode in _listening_inodes(port, proc)}
    if not targets:
        return "a process this system does not show"
    for fd_dir in proc.glob("[0-9]*/fd"):
        with contextlib.suppress(OSError):
            for fd in fd_dir.iterdir():
                with contextlib.suppress(OSError):
                    if fd.readlink().as_posix() in targets:
                        pid = fd_dir.parent.name
                        command = (fd_dir.parent / "cmdline").read_bytes().replace(b"\0", b" ")
                        return f"pid {pid} ({command.decode(errors='replace').strip()[:80]})"
    return "a process of another user"
