"""An agent with concept memory, offline on the tiny model: teach, ask, remember, recall, forget.

Builds a LangChain agent (`langchain.agents.create_agent`) from `ChatYoLLaVA` with the store as
its concept source and the six concept tools, over a `ConceptStore` in a temporary folder. Photos
of a red mug "bo" are drawn with PIL.

Read this first: the `tiny` model has random weights. It never calls a tool by itself and its
answers are gibberish. So this script drives every tool step itself, with explicit tool
invocations (what the app's slash commands do), and asks the agent questions in between to show
what the model is given: the concept's description, its trained tokens once training is done,
and its remembered facts. With a real LLaVA (pass its id or folder as the first argument) the
same agent can call the tools itself; expect to need a GPU for that.

Runs in about 10 seconds on two CPU cores and deletes its temporary folder at the end (the tiny
model itself is built once into the data folder, `$YOLLAVA_HOME`, like every tiny run).
"""

from __future__ import annotations

import logging
import shutil
import sys
import tempfile
from pathlib import Path

from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage
from PIL import Image, ImageDraw

from yollava_agent import ChatYoLLaVA
from yollava_agent.memory import ConceptStore, StoreConceptSource
from yollava_agent.tools import TrainingQueue, concept_tools
from yollava_agent.training.config import TrainingConfig
from yollava_agent.training.negatives import ClipConfig

USER = "alice"
SMALL_TRAINING = TrainingConfig(
    epochs=4, batch_size=4, warmup_epochs=1, turns_per_positive=4, attribute_answer_tokens=4,
    learning_rate=1e-2,
)
"""A few seconds of training on the CPU: enough to show the mechanics, not to learn anything."""


def draw_mug(path: Path, shade: int, background: tuple[int, int, int] = (235, 230, 220)) -> Path:
    """A red mug on a plain background, a little different for every `shade`."""
    image = Image.new("RGB", (96, 96), background)
    draw = ImageDraw.Draw(image)
    draw.rectangle((28, 30, 64, 78), fill=(200, 30 + shade, 40))
    draw.arc((58, 40, 80, 64), start=-90, end=90, fill=(200, 30 + shade, 40), width=5)
    image.save(path)
    return path


def step(title: str, text: str) -> None:
    print(f"\n[{title}]\n{text}", flush=True)


def ask(agent, question: str, photo: Path | None = None) -> str:
    content: list = [{"type": "image", "path": str(photo)}] if photo else []
    content.append({"type": "text", "text": question})
    result = agent.invoke({"messages": [HumanMessage(content=content)]})
    answer = next(m for m in reversed(result["messages"]) if isinstance(m, AIMessage))
    calls = f" (tool calls: {[c['name'] for c in answer.tool_calls]})" if answer.tool_calls else ""
    return f"Q: {question}\nA: {answer.text!r}{calls}"


def main(model: str = "tiny") -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    folder = Path(tempfile.mkdtemp(prefix="yollava-agent-example-"))
    queue = None
    try:
        photos_dir = folder / "photos"
        photos_dir.mkdir()
        bo_photos = [draw_mug(photos_dir / f"bo{i}.png", 20 * i) for i in range(4)]
        new_photo = draw_mug(photos_dir / "kitchen.png", 30, background=(225, 235, 240))

        store = ConceptStore(folder / "home", clip=ClipConfig(model_name="tiny"))
        queue = TrainingQueue(store, model=model, config=SMALL_TRAINING)
        tools = {tool.name: tool for tool in concept_tools(store, queue, USER)}
        source = StoreConceptSource(store, USER)
        chat = ChatYoLLaVA(model=model, max_tokens=24, concept_source=source)
        agent = create_agent(
            chat,
            list(tools.values()),
            system_prompt="You help the user with their things. Use the tools to remember them.",
        )
        print(f"Agent with tools {sorted(tools)} on model {chat.model_name!r}, data in {folder}")

        paths = [str(p) for p in bo_photos]
        step("teach", tools["teach_concept"].invoke(
            {"name": "bo", "photo_paths": paths, "description": "a red ceramic mug"}
        ))
        step("recognise", tools["recognize_concepts"].invoke({"photo_path": str(bo_photos[2])}))
        step("ask (instant tier)", ask(agent, "Is bo in this photo?", bo_photos[2]))

        job = queue.job(USER, "bo")
        if job is None or not job.finished.wait(120):
            raise RuntimeError("training of 'bo' did not finish in 120 s")
        step("status", tools["concept_status"].invoke({"name": "bo"}))
        step("ask (trained tokens)", ask(agent, "What does bo look like?"))

        step("remember", tools["remember_fact"].invoke(
            {"concept": "bo", "fact": "bo was a birthday present from Ana"}
        ))
        question = "Who gave me bo?"
        given = {a.name: a.facts for a in chat.active_concepts(question, [])}
        step("recall", f"The model is given these facts with the question: {given}\n"
             + ask(agent, question))
        step("list", tools["list_concepts"].invoke({}))

        step("forget", tools["forget_concept"].invoke({"name": "bo"}))
        step("after forgetting", "\n".join([
            tools["list_concepts"].invoke({}),
            tools["recognize_concepts"].invoke({"photo_path": str(new_photo)}),
            tools["concept_status"].invoke({"name": "bo"}),
        ]))
        print("\nDone.")
    finally:
        if queue is not None:
            queue.close()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
