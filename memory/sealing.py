"""`ConceptKey`: each concept's own key, so that forgetting a concept destroys its text everywhere.

A concept's description and facts are stored in Chroma sealed (Fernet: AES-128-CBC with an
HMAC-SHA256 tag, from the `cryptography` package) with a key that lives only in the concept's own
folder. `forget` deletes the records and the folder, key included. Deleting rows from SQLite (or
from Chroma's write log) leaves their bytes in free pages until they are overwritten, and Chroma's
own `chroma.sqlite3` must never be rewritten behind its back (a second SQLite library in the same
process breaks its locks); with the key gone, whatever remains of those pages is unreadable
ciphertext. Nothing of Chroma's files is touched, and forgetting is one folder removal.

Chosen not to do: protecting the data folder at rest. The key sits beside the ciphertext while the
concept exists, so whoever can read the data folder can read the concept; the point is forgetting.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from yollava_agent.errors import YoLLaVAError

KEY_FILE = "concept.key"


class SealedTextError(YoLLaVAError):
    """Stored text of a concept cannot be read: its key is missing or does not match."""


class ConceptKey:
    """Seals and opens one concept's text with the key in its folder."""

    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    @staticmethod
    def create(folder: Path) -> ConceptKey:
        """Write a new key into `folder` (a staging folder not yet visible to readers)."""
        key = Fernet.generate_key()
        path = folder / KEY_FILE
        with open(path, "wb") as handle:
            handle.write(key)
            handle.flush()
            os.fsync(handle.fileno())
        return ConceptKey(key)

    @staticmethod
    def of(folder: Path) -> ConceptKey:
        """The key of the concept whose folder this is."""
        path = folder / KEY_FILE
        try:
            return ConceptKey(path.read_bytes())
        except FileNotFoundError as e:
            msg = (
                f"The key of the concept stored in {folder} is missing ({path}): its description "
                "and facts cannot be read. Forget the concept and teach it again."
            )
            raise SealedTextError(msg) from e

    def seal(self, text: str) -> str:
        """`text` sealed, as ASCII ('' stays '')."""
        return self._fernet.encrypt(text.encode("utf-8")).decode("ascii") if text else ""

    def open(self, sealed: str) -> str:
        """The text `seal` was given."""
        if not sealed:
            return ""
        try:
            return self._fernet.decrypt(sealed.encode("ascii")).decode("utf-8")
        except InvalidToken as e:
            msg = "Stored text of a concept does not match its key: the concept folder was replaced."
            raise SealedTextError(msg) from e
