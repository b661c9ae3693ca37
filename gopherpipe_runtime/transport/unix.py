"""unix:///path: listening and connecting on a Unix socket."""

from __future__ import annotations

import os
import socket
import stat

from ..address import Address


def listen(address: Address, backlog: int) -> tuple[socket.socket, Address]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        _remove_stale_socket(address.path)
        sock.bind(address.path)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock, address


def _remove_stale_socket(path: str) -> None:
    # A socket file left by a dead server would make bind fail; anything that is
    # not a socket is somebody's file and must not be touched.
    try:
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass


def connect(address: Address, timeout: float | None) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(address.path)
    except BaseException:
        sock.close()
        raise
    return sock
