"""The Gradio chat app: `/teach bo` with photos, live training progress, a concept gallery.

Handlers are plain functions that take what they need (an `AppContext` and the user id) as
arguments; `build_app` wires them to components in one place, so tests call them directly. The
user is the authenticated Gradio user (`request.username`), or "local" without auth; every store
call and every conversation is scoped by it. Conversations persist in SQLite through LangChain's
`SQLChatMessageHistory`; uploaded photos are copied into the data folder so history survives
restarts. Slash commands go through the same LangChain tools an agent would use.

Choices: earlier turns reach the model as text only (LLaVA-1.5 was tuned on one photo per
conversation; the photos of the current turn are sent). Training runs in the `TrainingQueue`'s
thread; a timer refreshes its progress and the gallery, so the chat stays usable meanwhile.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd
from langchain_community.chat_message_histories import SQLChatMessageHistory
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from yollava_agent.chat_model import ChatYoLLaVA
from yollava_agent.concept import Concept
from yollava_agent.errors import YoLLaVAError
from yollava_agent.images import load_image
from yollava_agent.memory import ConceptStore, StoreConceptSource
from yollava_agent.tools.concept_tools import concept_tools
from yollava_agent.tools.queue import TrainingQueue
from yollava_agent.ui.commands import LOCAL_USER

logger = logging.getLogger(__name__)

HELP = """Commands:
- `/teach NAME [a few words about it]` with 3-10 photos attached: teach a concept
- `/concepts`: list your concepts
- `/status [NAME]`: training status
- `/fact NAME TEXT`: remember a fact about a concept
- `/forget NAME`: forget a concept and everything about it
- `/clear`: start a new conversation
- `/help`: this text

Anything else is a question: attach a photo to ask about it, or name a concept (`bo`)."""


@dataclass
class AppContext:
    """What the handlers work with."""

    chat_model: ChatYoLLaVA
    store: ConceptStore
    queue: TrainingQueue
    history_url: str
    """SQLAlchemy URL of the conversations database, e.g. sqlite:////data/chats.sqlite."""
    uploads: Path
    """Folder where attached photos are kept."""
    notice: str = ""
    """Shown at the top of the page: e.g. that the tiny model's answers are meaningless."""


def user_of(request: gr.Request | None) -> str:
    """The signed-in user's name, or the single local user without auth."""
    return getattr(request, "username", None) or LOCAL_USER


def _history(ctx: AppContext, user_id: str) -> SQLChatMessageHistory:
    return SQLChatMessageHistory(session_id=user_id, connection=ctx.history_url)


def keep_upload(ctx: AppContext, user_id: str, path: str) -> str:
    """Copy an attached file into the data folder (by content hash) and return the copy's path."""
    source = Path(path)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    folder = ctx.uploads / hashlib.sha256(user_id.encode()).hexdigest()[:24]
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{digest}{source.suffix.lower()}"
    if not target.exists():
        shutil.copyfile(source, target)
    return str(target)


def _chat_entries(message: BaseMessage) -> list[dict[str, Any]]:
    role = "user" if isinstance(message, HumanMessage) else "assistant"
    blocks = [message.content] if isinstance(message.content, str) else message.content
    entries = []
    for block in blocks:
        if isinstance(block, str):
            entries.append({"role": role, "content": block})
        elif block.get("type") == "image" and block.get("path"):
            entries.append({"role": role, "content": {"path": block["path"]}})
        elif block.get("type") == "text":
            entries.append({"role": role, "content": block["text"]})
    return entries


def load_conversation(ctx: AppContext, user_id: str) -> list[dict[str, Any]]:
    """The user's saved conversation, as chatbot messages."""
    return [entry for m in _history(ctx, user_id).messages for entry in _chat_entries(m)]


def run_command(ctx: AppContext, user_id: str, text: str, files: list[str]) -> str:
    """Answer a slash command; every problem is an answer that says what to do."""
    command, _, rest = text.strip().partition(" ")
    rest = rest.strip()
    tools = {tool.name: tool for tool in concept_tools(ctx.store, ctx.queue, user_id)}
    name, _, words = rest.partition(" ")
    if command == "/teach":
        if not name:
            return "Say which name to teach: `/teach bo` with photos of bo attached."
        if not files:
            return f"Attach 3 to 10 photos of {name} to `/teach {name}`, then send again."
        return tools["teach_concept"].invoke(
            {"name": name, "photo_paths": files, "description": words.strip()}
        )
    if command == "/concepts":
        return tools["list_concepts"].invoke({})
    if command == "/status":
        return tools["concept_status"].invoke({"name": name}) if name else tools["list_concepts"].invoke({})
    if command == "/forget":
        if not name:
            return "Say which concept to forget: `/forget bo`."
        return tools["forget_concept"].invoke({"name": name})
    if command == "/fact":
        if not name or not words.strip():
            return "Say the concept and the fact: `/fact bo bo's birthday is May 3`."
        return tools["remember_fact"].invoke({"concept": name, "fact": words.strip()})
    if command == "/clear":
        _history(ctx, user_id).clear()
        return "Started a new conversation."
    if command == "/help":
        return HELP
    return f"Unknown command `{command}`.\n\n{HELP}"


def respond(
    ctx: AppContext, user_id: str, message: dict[str, Any], chat: list[dict[str, Any]]
) -> Iterator[list[dict[str, Any]]]:
    """Handle one submission (text and attached files): a command, or a streamed answer."""
    text = (message.get("text") or "").strip()
    files = [keep_upload(ctx, user_id, f) for f in message.get("files") or []]
    shown = [*chat, *({"role": "user", "content": {"path": f}} for f in files)]
    if text:
        shown.append({"role": "user", "content": text})
    if text.startswith("/"):
        reply = run_command(ctx, user_id, text, files)
        if text.split()[0] == "/clear":
            yield [{"role": "assistant", "content": reply}]
            return
        yield [*shown, {"role": "assistant", "content": reply}]
        return
    if not text and not files:
        yield chat
        return
    for path in files:
        try:
            load_image(path)
        except YoLLaVAError as e:
            yield [*shown, {"role": "assistant", "content": f"{e} Attach photos (JPEG, PNG, WebP)."}]
            return
    question = HumanMessage(
        content=[*({"type": "image", "path": f} for f in files), {"type": "text", "text": text or "What is in this photo?"}]
    )
    history = _history(ctx, user_id)
    earlier = [_text_only(m) for m in history.messages[-12:]]
    model = ctx.chat_model.model_copy(
        update={"concept_source": StoreConceptSource(ctx.store, user_id)}
    )
    answer = ""
    try:
        for chunk in model.stream([*earlier, question]):
            answer += chunk.text
            yield [*shown, {"role": "assistant", "content": answer}]
    except YoLLaVAError as e:
        yield [*shown, {"role": "assistant", "content": f"Sorry, I could not answer: {e}"}]
        return
    history.add_messages([question, AIMessage(content=answer)])
    yield [*shown, {"role": "assistant", "content": answer}]


def _text_only(message: BaseMessage) -> BaseMessage:
    if isinstance(message.content, str):
        return message
    return type(message)(content=message.text)


def training_progress(ctx: AppContext, user_id: str) -> str:
    """Markdown with a progress bar per queued or running job of this user, on any replica of
    the store (the jobs' progress is read from the store)."""
    lines = []
    for job in ctx.queue.active_jobs(user_id):
        event = job.progress
        if event is None:
            lines.append(f"**{job.name}**: waiting to train")
            continue
        done = (event.epoch - 1) * event.steps_per_epoch + event.step
        total = event.epochs * event.steps_per_epoch
        accuracy = "-" if event.accuracy is None else f"{event.accuracy:.2f}"
        lines.append(
            f"**{job.name}** <progress value='{done}' max='{total}'></progress> "
            f"epoch {event.epoch}/{event.epochs} · loss {event.loss:.3f} · accuracy {accuracy} · "
            f"about {event.eta_seconds:.0f} s left"
        )
    return "\n\n".join(lines) or "No training running."


def concept_gallery(ctx: AppContext, user_id: str) -> tuple[list[tuple[str, str]], str]:
    """Thumbnails with captions, and a markdown card per concept (status, facts)."""
    items, cards = [], []
    for record in ctx.store.list_concepts(user_id):
        photos = ctx.store.photo_paths(user_id, record.name)
        if photos:
            items.append((str(photos[0]), f"{record.name} · {record.status}"))
        facts = ctx.store.list_facts(user_id, record.name)
        card = [f"### {record.name} · {record.status}", record.description or ""]
        if record.error:
            card.append(f"Training failed: {record.error}")
        card.extend(f"- {fact.text}" for fact in facts)
        cards.append("\n".join(line for line in card if line))
    return items, "\n\n".join(cards) or "No concepts yet: `/teach NAME` with photos."


def loss_curves(ctx: AppContext, user_id: str) -> pd.DataFrame:
    """Epoch losses of every trained concept of this user, for a line plot."""
    rows = []
    for record in ctx.store.list_concepts(user_id):
        if record.status != "ready" or not record.artifact_path:
            continue
        stats = Concept.from_pretrained(record.artifact_path).training
        rows.extend(
            {"concept": record.name, "epoch": epoch, "loss": loss}
            for epoch, loss in enumerate(stats.get("epoch_losses", []), start=1)
        )
    return pd.DataFrame(rows, columns=["concept", "epoch", "loss"])


def build_app(ctx: AppContext, refresh_seconds: float = 1.0) -> gr.Blocks:
    """The app's page; every handler gets `ctx` and the request's user."""

    def on_load(request: gr.Request) -> tuple[Any, ...]:
        user = user_of(request)
        items, cards = concept_gallery(ctx, user)
        return load_conversation(ctx, user), training_progress(ctx, user), items, cards, loss_curves(ctx, user)

    def on_submit(message: dict[str, Any], chat: list[dict[str, Any]], request: gr.Request) -> Iterator[tuple[Any, ...]]:
        for update in respond(ctx, user_of(request), message, chat):
            yield update, gr.MultimodalTextbox(value=None, interactive=False)
        yield update, gr.MultimodalTextbox(value=None, interactive=True)

    def on_tick(request: gr.Request) -> tuple[Any, ...]:
        user = user_of(request)
        items, cards = concept_gallery(ctx, user)
        return training_progress(ctx, user), items, cards, loss_curves(ctx, user)

    with gr.Blocks(title="yollava") as app:
        gr.Markdown("# yollava: a chat that remembers your people, pets and things")
        if ctx.notice:
            gr.Markdown(f"**Note:** {ctx.notice}", elem_id="notice")
        with gr.Row():
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(elem_id="chat", height=480)
                box = gr.MultimodalTextbox(
                    placeholder="Ask, or /teach NAME with photos attached (/help)",
                    file_count="multiple",
                    file_types=["image"],
                    elem_id="message",
                )
            with gr.Column(scale=2):
                progress = gr.Markdown("No training running.", elem_id="progress")
                gallery = gr.Gallery(label="Your concepts", columns=3, height=220, elem_id="gallery")
                cards = gr.Markdown(elem_id="cards")
                curves = gr.LinePlot(x="epoch", y="loss", color="concept", label="Training loss", elem_id="loss")
        box.submit(on_submit, [box, chatbot], [chatbot, box])
        app.load(on_load, None, [chatbot, progress, gallery, cards, curves])
        gr.Timer(refresh_seconds).tick(on_tick, None, [progress, gallery, cards, curves])
    return app
