"""The Gradio chat app: `/teach bo` with photos, live training progress, a concept gallery.

Handlers are plain functions that take what they need (an `AppContext` and the user id) as
arguments; `build_app` wires them to components in one place, so tests call them directly. The
user is the authenticated Gradio user (`request.username`), or "local" without auth; every store
call and every conversation is scoped by it. Conversations persist (`history.py`), commands and
failed questions included; uploaded photos are checked before they are kept (a refused one is
named as the user attached it and never copied) and copied into the data folder so history
survives restarts. Slash commands go through the same LangChain tools an agent would use;
`/forget` also deletes the conversation's messages and uploaded copies of the concept. Under each
answer, the concepts it used and how ("recognised bo").

Choices: earlier turns reach the model as text only (LLaVA-1.5 was tuned on one photo per
conversation; the photos of the current turn are sent). Training runs in the `TrainingQueue`'s
thread; a timer refreshes its progress and the gallery, so the chat stays usable meanwhile.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from yollava_agent.chat_model import ChatYoLLaVA
from yollava_agent.concept import Concept
from yollava_agent.errors import UnknownConceptError, YoLLaVAError
from yollava_agent.images import load_image
from yollava_agent.memory import ConceptStore, StoreConceptSource
from yollava_agent.tools.concept_tools import concept_tools
from yollava_agent.tools.queue import TrainingQueue
from yollava_agent.ui.commands import LOCAL_USER
from yollava_agent.ui.history import (
    ANSWER,
    COMMAND,
    CONCEPTS_KEY,
    FAILED,
    QUESTION,
    Conversations,
    history_engine,
    marked,
    remove_files,
)

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

APP_CSS = """
#chat img { max-height: 96px; width: auto; object-fit: contain; }
#chat .user.message { display: flex; flex-wrap: wrap; gap: 6px; justify-content: flex-end; }
#chat .user.message > .message.component { width: auto; flex: 0 0 auto; }
#chat .user.message > .message:not(.component) { flex-basis: 100%; }
#gallery .caption-label { white-space: normal; }
"""
"""A message's photos as a row of thumbnails in the chat; gallery captions shown whole."""


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
    conversations: Conversations = field(init=False)
    """Every user's conversation, in the database at `history_url`."""

    def __post_init__(self) -> None:
        self.conversations = Conversations(history_engine(self.history_url))


def user_of(request: gr.Request | None) -> str:
    """The signed-in user's name, or the single local user without auth."""
    return getattr(request, "username", None) or LOCAL_USER


def _uploads_of(ctx: AppContext, user_id: str) -> Path:
    return ctx.uploads / hashlib.sha256(user_id.encode()).hexdigest()[:24]


def keep_upload(ctx: AppContext, user_id: str, path: str) -> str:
    """Copy an attached file into the data folder (by content hash) and return the copy's path."""
    source = Path(path)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    folder = _uploads_of(ctx, user_id)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{digest}{source.suffix.lower()}"
    if not target.exists():
        shutil.copyfile(source, target)
    return str(target)


def refused_attachment(files: list[str]) -> str | None:
    """Why an attached file cannot be used, naming it as the user attached it; None if all can.

    Checked before anything is kept, so a refused file is never copied into the data folder.
    """
    for path in files:
        try:
            load_image(path)
        except YoLLaVAError as e:
            name = Path(path).name
            return (
                f"{name!r} cannot be used: {str(e).replace(repr(path), repr(name))} "
                "Attach photos (JPEG, PNG, WebP)."
            )
    return None


def concept_note(concepts: list[dict[str, Any]]) -> str:
    """The line under an answer that says which concepts it used, and how."""
    parts = []
    for concept in concepts:
        verb = "recognised" if concept["found"] == "recognised" else "used"
        how = "trained tokens" if concept["tokens"] else "description and facts"
        parts.append(f"{verb} {concept['name']} ({how})")
    return f"*{' · '.join(parts)}*" if parts else ""


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
    note = concept_note(message.additional_kwargs.get(CONCEPTS_KEY, []))
    if note and entries:
        entries[-1] = {**entries[-1], "content": f"{entries[-1]['content']}\n\n{note}"}
    return entries


def load_conversation(ctx: AppContext, user_id: str) -> list[dict[str, Any]]:
    """The user's saved conversation, as chatbot messages."""
    return [entry for m in ctx.conversations.messages(user_id) for entry in _chat_entries(m)]


def run_command(ctx: AppContext, user_id: str, text: str, files: list[str]) -> str:
    """Answer a slash command; every problem is an answer that says what to do."""
    command, _, rest = text.strip().partition(" ")
    rest = rest.strip()
    tools = {
        tool.name: tool
        for tool in concept_tools(ctx.store, ctx.queue, user_id, status_hint="`/status {name}`")
    }
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
        return forget_everywhere(ctx, user_id, name, tools["forget_concept"])
    if command == "/fact":
        if not name or not words.strip():
            return "Say the concept and the fact: `/fact bo bo's birthday is May 3`."
        return tools["remember_fact"].invoke({"concept": name, "fact": words.strip()})
    if command == "/clear":
        ctx.conversations.clear(user_id)
        shutil.rmtree(_uploads_of(ctx, user_id), ignore_errors=True)  # shown by no message now
        return "Started a new conversation."
    if command == "/help":
        return HELP
    return f"Unknown command `{command}`.\n\n{HELP}"


def forget_everywhere(ctx: AppContext, user_id: str, name: str, forget_tool: Any) -> str:
    """Forget a concept in the store, then in the conversation and the uploaded copies."""
    try:
        record = ctx.store.get_concept(user_id, name)
        texts = [record.description, *(f.text for f in ctx.store.list_facts(user_id, name))]
        digests = [p.stem for p in ctx.store.photo_paths(user_id, name)]
    except YoLLaVAError:
        return forget_tool.invoke({"name": name})  # its answer says what is wrong
    reply = forget_tool.invoke({"name": name})
    if any(r.name == name for r in ctx.store.list_concepts(user_id)):
        return reply  # not forgotten (a job still stopping, a disk error): the reply says so
    shown = ctx.conversations.forget_concept(user_id, name, texts, digests)
    uploads = _uploads_of(ctx, user_id)
    copies = [p for p in uploads.glob("*") if p.stem in digests] if uploads.is_dir() else []
    still_shown = ctx.conversations.photos_shown(user_id)
    remove_files(p for p in {*copies, *shown} if p not in still_shown and p.is_relative_to(uploads))
    return reply + " Its photos and the messages about it are gone from this conversation too."


def respond(
    ctx: AppContext, user_id: str, message: dict[str, Any], chat: list[dict[str, Any]]
) -> Iterator[list[dict[str, Any]]]:
    """Handle one submission (text and attached files): a command, or a streamed answer.

    Every submission is kept in the conversation, whatever happens to it: a refused file, a
    failed answer, or a page closed while the answer streamed (what was streamed is kept).
    """
    text = (message.get("text") or "").strip()
    attached = list(message.get("files") or [])
    if not text and not attached:
        yield chat
        return
    refusal = refused_attachment(attached)
    if refusal is not None:
        shown = [*chat, {"role": "user", "content": text or "(photo)"}, {"role": "assistant", "content": refusal}]
        ctx.conversations.add(
            user_id, [marked(HumanMessage(text or "(photo)"), FAILED), marked(AIMessage(refusal), FAILED)]
        )
        yield shown
        return
    files = [keep_upload(ctx, user_id, f) for f in attached]
    blocks: list[dict[str, str]] = [{"type": "image", "path": f} for f in files]
    shown = [*chat, *({"role": "user", "content": {"path": f}} for f in files)]
    if text:
        shown.append({"role": "user", "content": text})
    if text.startswith("/"):
        reply = run_command(ctx, user_id, text, files)
        if text.split()[0] == "/clear":
            yield [{"role": "assistant", "content": reply}]
            return
        command = HumanMessage(content=[*blocks, {"type": "text", "text": text}])
        ctx.conversations.add(user_id, [marked(command, COMMAND), marked(AIMessage(reply), COMMAND)])
        yield [*shown, {"role": "assistant", "content": reply}]
        return
    yield from _answer(ctx, user_id, blocks, text, shown)


def _answer(
    ctx: AppContext,
    user_id: str,
    blocks: list[dict[str, str]],
    text: str,
    shown: list[dict[str, Any]],
) -> Iterator[list[dict[str, Any]]]:
    question = HumanMessage(content=[*blocks, {"type": "text", "text": text or "What is in this photo?"}])
    earlier = ctx.conversations.model_turns(user_id)
    model = ctx.chat_model.model_copy(update={"concept_source": StoreConceptSource(ctx.store, user_id)})
    answer, concepts, kind = "", [], FAILED
    try:
        for chunk in model.stream([*earlier, question]):
            answer += chunk.text
            concepts = chunk.response_metadata.get("concepts", concepts)
            yield [*shown, {"role": "assistant", "content": answer}]
        kind = ANSWER
    except GeneratorExit:  # the page closed or reloaded while the answer streamed
        answer = f"{answer} (stopped)".strip()
        raise
    except YoLLaVAError as e:
        answer = f"Sorry, I could not answer: {e}"
    except Exception as e:  # noqa: BLE001 - the page must get an answer, and the log the bug
        logger.exception("Answering a question failed")
        answer = f"Sorry, something went wrong while answering ({type(e).__name__}: {e})."
    finally:  # also when the page closes mid-answer: what was streamed is kept
        reply = marked(AIMessage(answer), kind, **{CONCEPTS_KEY: concepts})
        ctx.conversations.add(user_id, [marked(question, QUESTION if kind == ANSWER else FAILED), reply])
    note = concept_note(concepts)
    yield [*shown, {"role": "assistant", "content": f"{answer}\n\n{note}" if note else answer}]


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
        try:
            photos = ctx.store.photo_paths(user_id, record.name)
            facts = ctx.store.list_facts(user_id, record.name)
        except UnknownConceptError:
            continue  # forgotten by another request since it was listed
        if photos:
            items.append((str(photos[0]), f"{record.name} · {record.status}"))
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
        try:
            stats = Concept.from_pretrained(record.artifact_path).training
        except YoLLaVAError:
            continue  # forgotten (its folder gone) by another request since it was listed
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
        update = chat
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
                chatbot = gr.Chatbot(label="Conversation", show_label=False, elem_id="chat", height=560)
                box = gr.MultimodalTextbox(
                    label="Message",
                    show_label=False,
                    placeholder="Ask, or /teach NAME with 3-10 photos attached (/help)",
                    file_count="multiple",
                    file_types=["image"],
                    elem_id="message",
                )
            with gr.Column(scale=2):
                gr.Markdown("### Training")
                progress = gr.Markdown("No training running.", elem_id="progress")
                gr.Markdown("### Your concepts")
                gallery = gr.Gallery(
                    label="Your concepts",
                    show_label=False,
                    columns=4,
                    fit_columns=False,  # one concept is one small tile, not the whole width
                    height=240,
                    object_fit="cover",
                    elem_id="gallery",
                )
                cards = gr.Markdown(elem_id="cards")
                curves = gr.LinePlot(x="epoch", y="loss", color="concept", label="Training loss", elem_id="loss")
        box.submit(on_submit, [box, chatbot], [chatbot, box])
        app.load(on_load, None, [chatbot, progress, gallery, cards, curves])
        gr.Timer(refresh_seconds).tick(on_tick, None, [progress, gallery, cards, curves])
    return app


def launch_app(app: gr.Blocks, **options: Any) -> None:
    """Serve the page with its stylesheet (`launch` takes it in Gradio 6); options go to `launch`."""
    app.queue().launch(css=APP_CSS, **options)
