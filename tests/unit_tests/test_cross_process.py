"""A concept saved in one process and loaded in another reproduces the logits bit for bit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch
from langchain_core.messages import HumanMessage

from yollava_agent import Concept, ChatYoLLaVA, LlavaRuntime
from tests.conftest import HANG_SECONDS
from yollava_agent.concept import concept_tokens

REPO = Path(__file__).resolve().parents[2]

_WRITER = """
import sys, torch
from tests.conftest import make_concept
from tests.unit_tests.test_cross_process import concept_logits
from yollava_agent import shared_runtime
runtime = shared_runtime("tiny", "cpu", "fp32")
concept = make_concept(runtime, "bo", seed=11, scale=1.0)
concept.save_pretrained(sys.argv[1])
torch.save(concept_logits(runtime, concept), sys.argv[2])
"""


def concept_logits(runtime: LlavaRuntime, concept: Concept) -> torch.Tensor:
    """Logits of a text-only concept question, with the concept injected."""
    chat = ChatYoLLaVA(model="tiny", device="cpu", concepts=[concept])
    with runtime.lock, torch.inference_mode():
        turn = chat._prepare(runtime, [HumanMessage("Is <bo> a dog?")], None, {})
        return runtime.model(**turn.inputs).logits


def test_saved_concept_gives_identical_logits_in_another_process(runtime, tmp_path: Path) -> None:
    folder, logits_file = tmp_path / "bo", tmp_path / "logits.pt"
    subprocess.run(
        [sys.executable, "-c", _WRITER, str(folder), str(logits_file)],
        cwd=REPO,
        check=True,
        timeout=HANG_SECONDS,
    )
    concept = Concept.from_pretrained(folder, base=runtime.base)
    assert concept.tokens == concept_tokens("bo", 16)
    theirs = torch.load(logits_file)
    ours = concept_logits(runtime, concept)
    assert torch.equal(ours, theirs)
    zeroed = Concept(
        "bo", torch.zeros_like(concept.input_embeddings), concept.output_embeddings, concept.base
    )
    assert not torch.equal(concept_logits(runtime, zeroed), theirs)  # the rows shape the logits
