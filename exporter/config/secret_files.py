"""Files that hold secrets: read early for the log redactor, and warned about when other users can read them.

The configuration names these files (credential key files, the OIDC token, the web config's TLS keys).
Their content is peeked before the configuration is validated, so that a secret pasted into the wrong
key is hidden in the error that names that key; their permissions are checked the way ssh checks a
private key file, with a warning rather than a refusal.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)


# A secret file is a few hundred bytes (an OIDC token is a JWT of 1-2 KiB); anything bigger is not
# read just to learn it.
PEEK_MAX_BYTES = 64 * 1024


def peek_secret_file(path: str | Path | None) -> str | None:
    """The stripped text of a secret file, for the log redactor only; None when unreadable. Never raises.

    Called before the configuration is validated, on any path a secret-file setting (or
    ``ALIBABA_CLOUD_OIDC_TOKEN_FILE``) names, so that a secret pasted into another key is hidden in
    the error that names that key. Only regular files are opened (a FIFO or device would block).
    """
    if not path:
        return None
    try:
        file = Path(path)
        if not file.is_file():
            return None
        with file.open("rb") as handle:
            data = handle.read(PEEK_MAX_BYTES + 1)
        if len(data) > PEEK_MAX_BYTES:
            return None
        return data.decode("utf-8").strip() or None
    except (OSError, ValueError):  # ValueError: a NUL in the path, or not UTF-8 (UnicodeDecodeError)
        return None


FileStamp = tuple[int, int, int, int]


def file_stamp(path: Path) -> FileStamp:
    """What tells a secret file changed without reading it: (device, inode, mtime in ns, size), through
    symlinks. Rewriting the file changes mtime or size; replacing it (``mv``, or Kubernetes swapping a
    mounted Secret's symlink) changes the inode. A ``stat``, cheap enough to check before every use;
    raises :class:`OSError` when the file cannot be reached."""
    st = path.stat()
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)


def loose_permissions(path: Path) -> str | None:
    """Why a secret file can be read by users other than this process's, or None when it cannot.

    Like ssh's check of a private key file, but only said, not refused. ``stat`` follows symlinks:
    Kubernetes mounts Secret keys as links into a timestamped directory, and the target's mode is
    what counts. Readable by others is always too open. Readable by the group is fine only when
    that is how this process reads the file: not its owner, a member of its group (a Kubernetes
    Secret volume with ``defaultMode: 0440`` and the pod's ``fsGroup``).
    """
    if not hasattr(os, "geteuid"):
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    mode = stat.S_IMODE(st.st_mode)
    if mode & stat.S_IROTH:
        return f"mode {mode:04o} lets every user read it"
    uid = os.geteuid()
    read_through_group = uid not in (0, st.st_uid) and (st.st_gid == os.getegid() or st.st_gid in os.getgroups())
    if mode & stat.S_IRGRP and not read_through_group:
        return f"mode {mode:04o} lets group {st.st_gid} read it"
    return None


PERMISSION_FIX = ("make it readable by this process's user only (chmod 0400), or 0440 when the process reads it "
                  "through its group; for a Kubernetes Secret volume set defaultMode: 0400 (or 0440 with the "
                  "pod's fsGroup), as its default 0644 lets every user read it")


class PermissionCheck:
    """Warns when a secret file is readable by other users: once per file, again when the file changes.

    A file is identified by its target's device, inode and mode, so a Secret update (a new file
    behind the symlink) or a ``chmod`` is checked and reported afresh, and an unchanged file is not
    reported twice.
    """

    def __init__(self) -> None:
        self._seen: dict[Path, tuple[int, int, int, int, int]] = {}

    def check(self, key: str, path: Path) -> str | None:
        """The problem with ``path`` (the setting ``key``), logged when this state of it is new."""
        try:
            st = path.stat()
        except OSError:
            return None
        state = (st.st_dev, st.st_ino, st.st_mode, st.st_uid, st.st_gid)
        problem = loose_permissions(path)
        if self._seen.get(path) != state:
            self._seen[path] = state
            if problem is not None:
                log.warning("secret file is readable by other users", extra={
                    "key": key, "path": str(path), "problem": problem, "fix": PERMISSION_FIX})
        return problem
