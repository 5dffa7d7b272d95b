"""A personal concept as a small artifact: a folder with `concept.json` and `concept.safetensors`.

A concept is an identifier token `<bo>` plus k latent tokens `<bo_1>..<bo_k>` (k=16 by default),
all new vocabulary entries of a frozen base LLaVA. The artifact holds their k+1 input-embedding rows
and their k+1 output (lm_head) rows, plus a fingerprint of the base they were trained on, so that
loading onto another base fails loudly instead of answering nonsense. On a base that ties its
output head to its input embeddings (the Qwen2-based LLaVAs) one set of rows serves both sides:
the two tensors are equal, and the fingerprint records the tying (format version 2; version 1
artifacts, which predate it, were all trained with two separate sets and read as untied).

Saving is atomic: the folder is written to a temporary sibling and swapped in, so a crash leaves
either the previous version or the new one, never a mix. Not here: injecting rows into a model
(`injection.py`) and training them (`training/`).
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import tempfile
import unicodedata
from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from yollava_agent.errors import ConceptBaseMismatchError, ConceptLoadError, InvalidConceptNameError

CONFIG_NAME = "concept.json"
WEIGHTS_NAME = "concept.safetensors"
FORMAT_VERSION = 2
READABLE_FORMAT_VERSIONS = (1, 2)
DEFAULT_NUM_LATENT_TOKENS = 16
MAX_NAME_LENGTH = 40

# Letters, digits, '_' and '-', starting with a letter or digit: safe as a folder name on every
# platform and as a token body, and free of the characters that break token or path parsing.
_NAME_PATTERN = re.compile(r"[^\W_][\w-]*")
# '_' and digits at the end is the form of latent tokens: refusing it for names means no concept's
# tokens can ever be another's (`<bo_1>` is only ever bo's first latent token).
_LATENT_SUFFIX = re.compile(r"_\d+$")


def validate_concept_name(
    name: object,
    base_vocabulary: Collection[str] = (),
    num_latent_tokens: int = DEFAULT_NUM_LATENT_TOKENS,
) -> str:
    """Return `name` if it can be a concept, else raise `InvalidConceptNameError` saying why.

    The one rule for names, applied wherever a name comes in (store, tools, app, CLI, trainer):
    a safe identifier, not of the latent-token form, and, given the base model's vocabulary,
    none of whose tokens (`<bo>`, `<bo_1>`...) the base already has (`s` would be `<s>`).
    """
    if not isinstance(name, str):
        msg = f"Concept name must be a string, got {type(name).__name__} {name!r}."
        raise InvalidConceptNameError(msg)
    if not name:
        msg = "Concept name is empty: give a short name such as 'bo' or 'my-mug'."
        raise InvalidConceptNameError(msg)
    if len(name) > MAX_NAME_LENGTH:
        msg = (
            f"Concept name {name!r} is {len(name)} characters long; "
            f"use at most {MAX_NAME_LENGTH}."
        )
        raise InvalidConceptNameError(msg)
    if unicodedata.normalize("NFC", name) != name or not _NAME_PATTERN.fullmatch(name):
        msg = (
            f"Concept name {name!r} is not a safe identifier: use letters, digits, '_' and '-', "
            "starting with a letter or digit (no spaces, path separators, '<', '>' or control "
            "characters)."
        )
        raise InvalidConceptNameError(msg)
    if _LATENT_SUFFIX.search(name):
        stem, digits = name.rsplit("_", 1)
        msg = (
            f"Concept name {name!r} ends in '_' and digits, which is how latent tokens are named "
            f"(<{stem}_{digits}> is a latent token of {stem!r}); choose another name, such as "
            f"{stem + '-' + digits!r}."
        )
        raise InvalidConceptNameError(msg)
    taken = [t for t in concept_tokens(name, num_latent_tokens) if t in base_vocabulary]
    if taken:
        msg = (
            f"Concept name {name!r} cannot be used with this model: its vocabulary already has "
            f"the token {taken[0]!r}. Choose another name, such as {name + '-1'!r}."
        )
        raise InvalidConceptNameError(msg)
    return name


def mentions(text: str, name: str) -> bool:
    """Whether `text` names the concept as a word: "bo", "<bo>", "Bo's" (not "bob" or "bo-2")."""
    if name.casefold() not in text.casefold():
        return False  # most texts name few concepts: skip the pattern
    return re.search(rf"(?<![\w-])<?{re.escape(name)}>?(?![\w-])", text, flags=re.IGNORECASE) is not None


def identifier_token(name: str) -> str:
    """The token that stands for the concept in prompts and answers: `<bo>`."""
    return f"<{name}>"


def latent_tokens(name: str, num_latent_tokens: int) -> list[str]:
    """The latent tokens that describe the concept: `<bo_1>..<bo_k>`."""
    return [f"<{name}_{i}>" for i in range(1, num_latent_tokens + 1)]


def concept_tokens(name: str, num_latent_tokens: int) -> list[str]:
    """All k+1 tokens of a concept, identifier first, in the order of the artifact's rows."""
    return [identifier_token(name), *latent_tokens(name, num_latent_tokens)]


@dataclass(frozen=True)
class BaseFingerprint:
    """What identifies a base model for a concept: rows trained on one base mean nothing on another."""

    model_id: str
    """The id or folder the base was loaded from (informational: the same weights may move)."""
    hidden_size: int
    """Width of the embedding rows."""
    vocab_size: int
    """Number of base embedding rows, before any concept tokens."""
    tokenizer_sha256: str
    """Hash of the base tokenizer's vocabulary."""
    embedding_sha256: str
    """Hash of the first base embedding rows in bf16: tells apart bases with the same tokenizer."""
    tied_embeddings: bool = False
    """True when the base's output head is its input-embedding matrix: one set of concept rows
    then serves input and output."""

    def same_base(self, other: BaseFingerprint) -> bool:
        """True when both describe the same weights, wherever they were loaded from."""
        return (
            self.tied_embeddings == other.tied_embeddings
            and self.hidden_size == other.hidden_size
            and self.vocab_size == other.vocab_size
            and self.tokenizer_sha256 == other.tokenizer_sha256
            and self.embedding_sha256 == other.embedding_sha256
        )

    def describe(self) -> str:
        """A short human-readable description for error messages."""
        return (
            f"{self.model_id!r} (hidden size {self.hidden_size}, vocabulary {self.vocab_size}, "
            f"tokenizer {self.tokenizer_sha256[:12]}, weights {self.embedding_sha256[:12]}, "
            f"{self.tying})"
        )

    @property
    def tying(self) -> str:
        """'tied embeddings' or 'untied embeddings', for messages."""
        return "tied embeddings" if self.tied_embeddings else "untied embeddings"


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class Concept:
    """A trained (or initialised) personal concept: k+1 token rows for one base model."""

    name: str
    """The concept's name; its identifier token is `<name>`."""
    input_embeddings: torch.Tensor
    """Input-embedding rows, shape (k+1, hidden): identifier first, then the latent tokens."""
    output_embeddings: torch.Tensor
    """Output (lm_head) rows, shape (k+1, hidden), same order."""
    base: BaseFingerprint
    """The base model the rows belong to."""
    description: str = ""
    """Optional words from the user about the concept ("my dog", "a blue ceramic mug")."""
    created: str = field(default_factory=_utc_now)
    """When this version was made (UTC, ISO 8601)."""
    version: int = 1
    """Revision of this concept: retraining it bumps the number."""
    training: dict[str, Any] = field(default_factory=dict)
    """Training statistics (epochs, losses, accuracy, seconds); empty for an untrained concept."""

    def __post_init__(self) -> None:
        validate_concept_name(self.name)
        if self.input_embeddings.ndim != 2 or self.input_embeddings.shape[0] < 1:
            msg = (
                f"Concept {self.name!r}: input_embeddings must have shape (k+1, hidden), "
                f"got {tuple(self.input_embeddings.shape)}."
            )
            raise ValueError(msg)
        if self.output_embeddings.shape != self.input_embeddings.shape:
            msg = (
                f"Concept {self.name!r}: output_embeddings has shape "
                f"{tuple(self.output_embeddings.shape)}, input_embeddings "
                f"{tuple(self.input_embeddings.shape)}; they must match."
            )
            raise ValueError(msg)
        if self.input_embeddings.shape[1] != self.base.hidden_size:
            msg = (
                f"Concept {self.name!r}: rows are {self.input_embeddings.shape[1]} wide but the "
                f"base {self.base.model_id!r} has hidden size {self.base.hidden_size}."
            )
            raise ValueError(msg)
        if self.base.tied_embeddings and not torch.equal(
            self.input_embeddings, self.output_embeddings
        ):
            msg = (
                f"Concept {self.name!r}: its base {self.base.model_id!r} ties input and output "
                "embeddings, so one set of rows serves both; output_embeddings must equal "
                "input_embeddings."
            )
            raise ValueError(msg)

    @property
    def num_latent_tokens(self) -> int:
        """k, the number of latent tokens."""
        return self.input_embeddings.shape[0] - 1

    @property
    def identifier(self) -> str:
        """The identifier token, `<name>`."""
        return identifier_token(self.name)

    @property
    def tokens(self) -> list[str]:
        """All k+1 tokens, in row order."""
        return concept_tokens(self.name, self.num_latent_tokens)

    def check_base(self, base: BaseFingerprint) -> None:
        """Raise `ConceptBaseMismatchError` unless `base` is the model this concept was made for."""
        if self.base.tied_embeddings != base.tied_embeddings:
            msg = (
                f"Concept {self.name!r} was trained on a base with {self.base.tying}, "
                f"{self.base.describe()}, but the loaded model has {base.tying}, "
                f"{base.describe()}: its rows are not the ones this model would use. Load the "
                f"base it was trained on, or teach {self.name!r} again on this model."
            )
            raise ConceptBaseMismatchError(msg)
        if not self.base.same_base(base):
            msg = (
                f"Concept {self.name!r} was trained on base {self.base.describe()}, but the loaded "
                f"model is {base.describe()}. Load the base it was trained on, or teach "
                f"{self.name!r} again on this model."
            )
            raise ConceptBaseMismatchError(msg)

    def to_json_dict(self) -> dict[str, Any]:
        """The `concept.json` content."""
        return {
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "identifier_token": self.identifier,
            "num_latent_tokens": self.num_latent_tokens,
            "base": asdict(self.base),
            "description": self.description,
            "created": self.created,
            "version": self.version,
            "dtype": str(self.input_embeddings.dtype).removeprefix("torch."),
            "training": self.training,
        }

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write the concept to `folder` atomically and return the folder.

        The new version is complete on disk before it replaces an existing one; a crash at any
        point leaves the earlier version (or nothing, for a new concept) and a hidden temporary
        folder that the next save removes.
        """
        folder = Path(folder)
        parent = folder.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            _remove_stale_temporaries(folder)
            staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.new-", dir=parent))
        except OSError as e:
            msg = f"Cannot write concept {self.name!r} to {folder}: {e}."
            raise ConceptLoadError(msg) from e
        try:
            # Copies: on a tied base both may be one tensor, which safetensors will not write twice.
            tensors = {
                "input_embeddings": self.input_embeddings.detach().cpu().clone(),
                "output_embeddings": self.output_embeddings.detach().cpu().clone(),
            }
            save_file(tensors, staging / WEIGHTS_NAME, metadata={"name": self.name})
            (staging / CONFIG_NAME).write_text(
                json.dumps(self.to_json_dict(), indent=2, sort_keys=True), encoding="utf-8"
            )
            _swap_in(staging, folder)
        except BaseException as e:
            shutil.rmtree(staging, ignore_errors=True)
            if isinstance(e, OSError):
                msg = f"Cannot write concept {self.name!r} to {folder}: {e}."
                raise ConceptLoadError(msg) from e
            raise
        return folder

    @classmethod
    def from_pretrained(
        cls, folder: str | Path, base: BaseFingerprint | None = None
    ) -> Concept:
        """Load a concept folder; with `base`, also check it belongs to that base model."""
        folder = Path(folder)
        with contextlib.suppress(OSError):  # a read-only parent: load what is there
            recover_interrupted_save(folder)
        config_path, weights_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
        if not config_path.is_file() or not weights_path.is_file():
            msg = (
                f"No concept at {folder}: expected {CONFIG_NAME} and {WEIGHTS_NAME} there. "
                "Check the path, or teach the concept first."
            )
            raise ConceptLoadError(msg)
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
            tensors = load_file(weights_path)
            concept = cls(
                name=config["name"],
                input_embeddings=tensors["input_embeddings"],
                output_embeddings=tensors["output_embeddings"],
                base=BaseFingerprint(**config["base"]),
                description=config.get("description", ""),
                created=config["created"],
                version=config["version"],
                training=config.get("training", {}),
            )
        except (OSError, ValueError, KeyError, TypeError) as e:
            msg = f"Concept folder {folder} is corrupt or from an incompatible version: {e}."
            raise ConceptLoadError(msg) from e
        if config.get("format_version") not in READABLE_FORMAT_VERSIONS:
            msg = (
                f"Concept folder {folder} has format version {config.get('format_version')!r}; "
                f"this yollava-agent reads versions {list(READABLE_FORMAT_VERSIONS)}."
            )
            raise ConceptLoadError(msg)
        if base is not None:
            concept.check_base(base)
        return concept


def recover_interrupted_save(folder: Path) -> None:
    """Finish what a save killed between its two renames left: put the old version back."""
    if folder.exists():
        return
    retired = sorted(folder.parent.glob(f".{folder.name}.old-*"))
    if retired:
        retired[-1].rename(folder)


def _remove_stale_temporaries(folder: Path) -> None:
    recover_interrupted_save(folder)
    for leftover in folder.parent.glob(f".{folder.name}.*-*"):
        shutil.rmtree(leftover, ignore_errors=True)


def _swap_in(staging: Path, folder: Path) -> None:
    """Replace `folder` by the complete `staging` folder; the old one goes only once the new is in."""
    if not folder.exists():
        staging.rename(folder)
        return
    retired = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old-", dir=folder.parent))
    retired.rmdir()
    folder.rename(retired)
    try:
        staging.rename(folder)
    except OSError:
        retired.rename(folder)
        raise
    shutil.rmtree(retired, ignore_errors=True)
