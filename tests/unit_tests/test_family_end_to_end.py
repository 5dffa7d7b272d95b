"""The whole path on every supported family's tiny build, as a user walks it.

Per family: `yollava teach` (hard negatives mined from a pool with CLIP, text-only attribute
turns answered by the base) writes an artifact; a new process loads it onto the base and chats,
with a photo and text-only, by `invoke` and by `stream`; its answers are compared with this
process's (the artifact reproduces the concept exactly), and the rows it injected with the
artifact's (on a tied base: one set, serving input and output); then a `yollava eval` smoke run.

The teach and eval commands run in this process (`yollava_agent.ui.cli.main`, the console
script) and one child process serves all four families: starting Python with torch and
transformers costs seconds on the CI's two cores.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from langchain_core.messages import HumanMessage

from tests.conftest import HANG_SECONDS, make_photo
from tests.unit_tests.test_evaluation import build_dataset
from yollava_agent import ChatYoLLaVA, Concept, shared_runtime
from yollava_agent.memory import ConceptStore
from yollava_agent.training.negatives import ClipConfig
from yollava_agent.ui.cli import main as cli_main
from yollava_agent.evaluation.methods import TRAINED, VANILLA
from yollava_agent.tiny import TINY_BUILDS

REPO = Path(__file__).resolve().parents[2]
FAMILIES = list(TINY_BUILDS)

QUESTIONS = {"photo": "Is <bo> here?", "text": "What colour is <bo>?"}
"""The two turns asked in both processes: the first with a photo, the second text-only."""

# Loads each family's artifact in a fresh process, chats, and reports what it saw as JSON.
_CHILD = """
import json, sys
from langchain_core.messages import HumanMessage
from yollava_agent import ChatYoLLaVA, Concept, shared_runtime
folders, questions, photo, out = json.loads(sys.argv[1]), json.loads(sys.argv[2]), *sys.argv[3:]
report = {}
for family, folder in folders.items():
    runtime = shared_runtime(family, "cpu", "fp32")
    concept = Concept.from_pretrained(folder, base=runtime.base)
    chat = ChatYoLLaVA(model=family, device="cpu", dtype="fp32", concepts=[concept], max_tokens=8)
    answers = {}
    for kind, question in questions.items():
        image = [{"type": "image", "path": photo}] if kind == "photo" else []
        message = HumanMessage(content=[*image, {"type": "text", "text": question}])
        invoked = chat.invoke([message])
        answers[kind] = {
            "invoke": invoked.text,
            "output_tokens": invoked.usage_metadata["output_tokens"],
            "stream": [chunk.text for chunk in chat.stream([message])],
        }
    ids = runtime.token_ids(concept.name)
    rows = {
        "input": runtime.model.get_input_embeddings().weight[ids].tolist(),
        "output": runtime.model.get_output_embeddings().weight[ids].tolist(),
    }
    report[family] = {"answers": answers, "rows": rows}
with open(out, "w") as f:
    json.dump(report, f)
"""


@pytest.fixture(scope="module")
def walked(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Teach every family, then load and chat in a new process; what each step left behind."""
    root = tmp_path_factory.mktemp("families")
    photos = []
    for i in range(3):
        photos.append(root / f"bo{i}.png")
        make_photo((220, 40 + 30 * i, 30), size=(48 + 16 * i, 40)).save(photos[-1])
    pool = root / "pool"
    pool.mkdir()
    for i in range(10):
        make_photo((20 * i, 200 - 10 * i, 90), size=(40 + 3 * i, 40)).save(pool / f"n{i}.png")
    folders, codes = {}, {}
    for family in FAMILIES:
        home = root / family
        codes[family] = cli_main(
            ["teach", "bo", *map(str, photos), "--model", family, "--negatives", str(pool),
             "--clip-model", "tiny", "--clip-pretrained", "none", "--epochs", "2",
             "--batch-size", "8", "--data", str(home)]
        )
        store = ConceptStore(home, clip=ClipConfig(model_name="tiny"))
        folders[family] = store.get_concept("local", "bo").artifact_path
    report = root / "child.json"
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(folders), json.dumps(QUESTIONS), str(photos[0]),
         str(report)],
        cwd=REPO, capture_output=True, text=True, timeout=HANG_SECONDS, check=False,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    child_saw = json.loads(report.read_text())
    return {"codes": codes, "folders": folders, "child": child_saw, "photo": str(photos[0])}


@pytest.mark.parametrize("family", FAMILIES)
def test_teach_writes_an_artifact_trained_on_negatives_and_text_turns(walked, family) -> None:
    assert walked["codes"][family] == 0
    concept = Concept.from_pretrained(walked["folders"][family])
    runtime = shared_runtime(family, "cpu", "fp32")
    assert concept.base.same_base(runtime.base) and concept.base.model_id == family
    samples = concept.training["samples"]
    assert samples["positive"] == 48 and samples["text"] == 30  # 3 photos x 16 turns, x 10 qs
    assert samples["negative"] > 0  # the pool photos CLIP did not take for the subject
    assert concept.training["epochs"] == 2


@pytest.mark.parametrize("family", FAMILIES)
def test_a_new_process_chats_with_the_concept_as_this_one_does(walked, family) -> None:
    seen = walked["child"][family]
    runtime = shared_runtime(family, "cpu", "fp32")
    concept = Concept.from_pretrained(walked["folders"][family], base=runtime.base)
    chat = ChatYoLLaVA(model=family, device="cpu", dtype="fp32", concepts=[concept], max_tokens=8)
    for kind, question in QUESTIONS.items():
        image = [{"type": "image", "path": walked["photo"]}] if kind == "photo" else []
        message = HumanMessage(content=[*image, {"type": "text", "text": question}])
        answer = seen["answers"][kind]
        assert answer["output_tokens"] > 0 and answer["invoke"], f"{family} {kind}: no answer"
        assert "".join(answer["stream"]) == answer["invoke"], f"{family} {kind}: stream differs"
        assert chat.invoke([message]).text == answer["invoke"], f"{family} {kind}: not reproduced"


@pytest.mark.parametrize("family", FAMILIES)
def test_the_injected_rows_are_the_artifacts(walked, family) -> None:
    rows = walked["child"][family]["rows"]
    concept = Concept.from_pretrained(walked["folders"][family])
    assert torch.equal(torch.tensor(rows["input"]), concept.input_embeddings)
    assert torch.equal(torch.tensor(rows["output"]), concept.output_embeddings)
    tied = concept.base.tied_embeddings
    assert tied == (family in ("tiny-interleave", "tiny-onevision"))
    assert torch.equal(concept.input_embeddings, concept.output_embeddings) is tied


@pytest.mark.parametrize("family", FAMILIES)
def test_eval_smoke_run(family, tmp_path: Path, capsys) -> None:
    dataset = build_dataset(tmp_path / "ds")
    out = tmp_path / "out"
    # The methods whose code depends on the family (the others are CLIP-only or the same calls).
    methods = [VANILLA, TRAINED]
    code = cli_main(
        ["eval", str(dataset), "--model", family, "--concepts", "ann", "--methods", *methods,
         "--clip-model", "tiny", "--clip-pretrained", "none", "--epochs", "1", "--batch-size", "8",
         "--out", str(out)]
    )
    assert code == 0, capsys.readouterr().err[-2000:]
    results = json.loads((out / "results.json").read_text())
    assert results["methods"] == methods
    printed = capsys.readouterr().out
    for method in methods:
        (ann,) = results["results"][method]["concepts"].values()
        assert 0.0 <= ann["weighted"] <= 1.0 and f"| {method} |" in printed
        assert ann["counts"]["positives"] == 2 and ann["counts"]["negatives"] == 4
    # `<ann> is <ann_1>...<ann_16>.`: the identifier, 'is', a lone space, 16 latents, the stop.
    assert results["results"][TRAINED]["concepts"]["ann"]["prompt_tokens"] == 20
