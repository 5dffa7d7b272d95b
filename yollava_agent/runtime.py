"""A loaded base LLaVA and the concepts injected into it.

`LlavaRuntime` owns one model and its processor. Injecting a concept adds its k+1 tokens to the
tokenizer, grows the input-embedding and output matrices and writes the concept's rows; removing it
takes all of that away again. The state is always a function of the set of injected concepts: each
change rebuilds the tokenizer from a pristine copy of the base tokenizer, sizes the matrices to
`max(base rows, tokens)` and rewrites every concept row. So injecting is idempotent, several
concepts can be active at once, and the base rows stay bit-identical throughout.

Checkpoints such as llava-1.5 pad their matrices past the tokenizer (32064 rows for 32002 tokens):
new tokens then get ids inside that padding. Those base rows are saved at load time and restored
whenever their slot is given back. On a base whose output head is its input-embedding matrix
(tied, as the Qwen2-based LLaVAs) the one matrix gets the concept's rows, which are then its
input and output rows alike; the fingerprint records the tying, so a concept trained with two
separate sets of rows is refused there (and the reverse).

Not here: choosing which concepts a conversation needs (the chat model and concept sources) and
training rows (`training/`).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import threading
from collections.abc import Iterable

import torch
from transformers import AddedToken, PreTrainedModel, ProcessorMixin

from yollava_agent.concept import BaseFingerprint, Concept, validate_concept_name
from yollava_agent.errors import ConceptConflictError, InvalidConceptNameError

logger = logging.getLogger(__name__)

_FINGERPRINT_ROWS = 16


def fingerprint_base(
    model: PreTrainedModel, tokenizer: object, model_id: str
) -> BaseFingerprint:
    """Describe the base so that concepts can tell whether they belong to it."""
    vocab = sorted(tokenizer.get_vocab().items())  # type: ignore[attr-defined]
    tokenizer_hash = hashlib.sha256(json.dumps(vocab).encode("utf-8")).hexdigest()
    weight = model.get_input_embeddings().weight
    tied = model.get_output_embeddings().weight is weight
    head = weight[:_FINGERPRINT_ROWS].detach().to(device="cpu", dtype=torch.bfloat16)
    embedding_hash = hashlib.sha256(head.view(torch.int16).numpy().tobytes()).hexdigest()
    return BaseFingerprint(
        model_id=model_id,
        hidden_size=weight.shape[1],
        vocab_size=weight.shape[0],
        tokenizer_sha256=tokenizer_hash,
        embedding_sha256=embedding_hash,
        tied_embeddings=tied,
    )


def _same_rows(a: Concept, b: Concept) -> bool:
    return a is b or (
        torch.equal(a.input_embeddings, b.input_embeddings)
        and torch.equal(a.output_embeddings, b.output_embeddings)
    )


class LlavaRuntime:
    """One loaded base model with its processor, and the concepts injected into it.

    The runtime is shared by every chat model that uses the same checkpoint, so callers that
    inject concepts and then generate hold `lock` for the whole turn.
    """

    def __init__(
        self, model: PreTrainedModel, processor: ProcessorMixin, model_id: str
    ) -> None:
        self.model = model
        self.processor = processor
        self.model_id = model_id
        self.lock = threading.RLock()
        self._base_tokenizer = copy.deepcopy(processor.tokenizer)  # type: ignore[attr-defined]
        self.base = fingerprint_base(model, self._base_tokenizer, model_id)
        self._base_rows = self.base.vocab_size
        first_padding_row = len(self._base_tokenizer)
        self._padding_rows = (
            self._input_weight[first_padding_row:].detach().clone(),
            self._output_weight[first_padding_row:].detach().clone(),
        )
        self._active: dict[str, Concept] = {}

    @property
    def device(self) -> torch.device:
        """Where the model's weights live."""
        return self._input_weight.device

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the model's weights."""
        return self._input_weight.dtype

    @property
    def tokenizer(self) -> object:
        """The current tokenizer, with the injected concepts' tokens."""
        return self.processor.tokenizer  # type: ignore[attr-defined]

    @property
    def base_vocabulary(self) -> dict[str, int]:
        """The base tokenizer's vocabulary, without concept tokens."""
        return self._base_tokenizer.get_vocab()  # type: ignore[attr-defined]

    @property
    def tied_embeddings(self) -> bool:
        """True when input and output matrices are one tensor (then only input rows apply)."""
        return self._output_weight is self._input_weight

    @property
    def injected(self) -> dict[str, Concept]:
        """The injected concepts by name, in injection order."""
        return dict(self._active)

    @property
    def _input_weight(self) -> torch.nn.Parameter:
        return self.model.get_input_embeddings().weight

    @property
    def _output_weight(self) -> torch.nn.Parameter:
        return self.model.get_output_embeddings().weight

    def token_ids(self, name: str) -> list[int]:
        """Ids of an injected concept's k+1 tokens, identifier first."""
        concept = self._active[name]
        return self.tokenizer.convert_tokens_to_ids(concept.tokens)  # type: ignore[attr-defined]

    def inject(self, *concepts: Concept) -> None:
        """Add concepts (or update their rows); concepts already injected are replaced."""
        active = dict(self._active)
        for concept in concepts:
            concept.check_base(self.base)
            active.pop(concept.name, None)
            active[concept.name] = concept
        self._apply(active)

    def remove(self, *names: str) -> None:
        """Take concepts out again; names that are not injected are ignored."""
        self._apply({name: c for name, c in self._active.items() if name not in names})

    def set_concepts(self, concepts: Iterable[Concept]) -> None:
        """Make exactly these concepts injected: a no-op when they already are."""
        wanted = {concept.name: concept for concept in concepts}
        if list(wanted) == list(self._active) and all(
            _same_rows(self._active[name], concept) for name, concept in wanted.items()
        ):
            return
        for concept in wanted.values():
            concept.check_base(self.base)
        self._apply(wanted)

    def _check_conflicts(self, active: dict[str, Concept]) -> None:
        base_vocab = self.base_vocabulary
        for concept in active.values():
            try:
                validate_concept_name(
                    concept.name, base_vocab, concept.num_latent_tokens, self.model_id
                )
            except InvalidConceptNameError as e:
                raise ConceptConflictError(str(e)) from e

    def _apply(self, active: dict[str, Concept]) -> None:
        self._check_conflicts(active)
        tokenizer = copy.deepcopy(self._base_tokenizer)
        new_tokens = [token for concept in active.values() for token in concept.tokens]
        # Plain added tokens, as the public Yo'LLaVA code adds them: a space before one becomes a
        # lone '▁' piece, and the newline after '<image>' is kept (lstrip would eat both).
        tokenizer.add_tokens(  # type: ignore[attr-defined]
            [AddedToken(t, normalized=False, special=False) for t in new_tokens]
        )
        rows = max(self._base_rows, len(tokenizer))  # type: ignore[arg-type]
        if self._input_weight.shape[0] != rows:
            self.model.resize_token_embeddings(rows, mean_resizing=False)
        with torch.no_grad():
            first_padding_row = len(self._base_tokenizer)
            padding_in, padding_out = self._padding_rows
            self._input_weight[first_padding_row : self._base_rows] = padding_in
            if not self.tied_embeddings:
                self._output_weight[first_padding_row : self._base_rows] = padding_out
            for concept in active.values():
                ids = tokenizer.convert_tokens_to_ids(concept.tokens)  # type: ignore[attr-defined]
                self._input_weight[ids] = concept.input_embeddings.to(self.device, self.dtype)
                if not self.tied_embeddings:
                    self._output_weight[ids] = concept.output_embeddings.to(
                        self.device, self.dtype
                    )
        self.processor.tokenizer = tokenizer  # type: ignore[attr-defined]
        self._active = active
        logger.debug("Injected concepts: %s", list(active))
