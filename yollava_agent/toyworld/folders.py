"""The folders one toyworld stage hands the next (symbolic base, skills export, eye run,
assembled base), checked when the command line names them.

Only the marker file a stage writes is checked, before any model loads, so a typo is refused at
once and by the path as given; whether the folder holds the right kind of model is each
stage's own check (`eye.start_from`, `skills.is_stage_two`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path


def saved_folder(*markers: str) -> Callable[[str], Path]:
    """An argparse `type`: the folder, unless it holds none of `markers`."""

    def check(value: str) -> Path:
        folder = Path(value)
        if any((folder / marker).is_file() for marker in markers):
            return folder
        msg = (
            f"{value!r} holds no {' or '.join(markers)}: name a folder an earlier stage wrote "
            "(the commands are in the README, 'Personalization on photos')."
        )
        raise argparse.ArgumentTypeError(msg)

    return check
