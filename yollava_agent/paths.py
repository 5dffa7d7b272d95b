"""Where yollava-agent keeps its files.

One data folder holds everything the product writes: built models (the offline tiny ones) and
the memory store (concepts, their photos and trained tokens, chats). `$YOLLAVA_HOME` wins;
otherwise the XDG data directory.
"""

from __future__ import annotations

import os
from pathlib import Path


def data_home() -> Path:
    """The data folder: `$YOLLAVA_HOME`, else `$XDG_DATA_HOME/yollava`, else `~/.local/share/yollava`."""
    explicit = os.environ.get("YOLLAVA_HOME")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "yollava"
