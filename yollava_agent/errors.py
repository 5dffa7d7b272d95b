"""Exceptions raised by yollava-agent.

Every error names the value that was wrong and says what to do about it. They all derive from
`YoLLaVAError` so callers (tools, the UI) can catch the package's errors in one place, and from the
built-in exception that fits, so code written against plain Python keeps working.
"""

from __future__ import annotations


class YoLLaVAError(Exception):
    """Base class of every error raised by yollava-agent."""


class ModelLoadError(YoLLaVAError, OSError):
    """A base LLaVA checkpoint could not be loaded."""


class InvalidConceptNameError(YoLLaVAError, ValueError):
    """A concept name is not a safe identifier for tokens and folders."""


class ConceptLoadError(YoLLaVAError, OSError):
    """A concept folder is missing, incomplete or corrupt."""


class ConceptBaseMismatchError(YoLLaVAError, ValueError):
    """A concept was trained on a different base model than the one loaded."""


class ConceptConflictError(YoLLaVAError, ValueError):
    """Two concepts (or a concept and the base vocabulary) would share a token."""


class UnknownConceptError(YoLLaVAError, KeyError):
    """A concept name that no configured concept or concept source knows."""

    def __str__(self) -> str:
        # KeyError would quote the whole message; keep it readable.
        return str(self.args[0]) if self.args else ""


class ImageInputError(YoLLaVAError, ValueError):
    """An image block or file that cannot be read as a photo."""


class UnsupportedMessageError(YoLLaVAError, TypeError):
    """A chat message of a type the model cannot render into its prompt."""


class PromptTooLongError(YoLLaVAError, ValueError):
    """A turn's prompt has more tokens than the chat model takes."""
