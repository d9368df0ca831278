"""Files that only their owner may read: a secret made once and kept beside the data it protects.

Standard library only, so that webapp/settings.py can use it before Django is set up.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def owner_only_text(path: Path, make: Callable[[], str]) -> str:
    """The text kept in ``path`` (stripped), readable by its owner only; written from
    ``make()`` when the file is missing. A looser mode found on the file is tightened.

    Created with O_EXCL, so that processes starting together agree on one secret: the loser
    of the race reads the winner's file. The caller checks that what it reads is usable.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
        return path.read_text().strip()
    text = make().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(text + "\n")
    return text
