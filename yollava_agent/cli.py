"""The `yollava` command line: `yollava chat`, an interactive chat in the terminal.

With no `--model`, the default checkpoint for the device is used when it can be loaded (local
folder or Hugging Face cache); otherwise the chat starts on the offline `tiny` model and says
plainly that its answers are meaningless. A model named with `--model` that cannot be loaded is
an error. Photos are attached with `/image PATH` before a question.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from yollava_agent.chat_model import ChatYoLLaVA
from yollava_agent.concept import Concept
from yollava_agent.errors import YoLLaVAError
from yollava_agent.loading import shared_runtime
from yollava_agent.sources import ActiveConcept
from yollava_agent.tiny import TINY_MODEL_NAME

CHAT_HELP = """Type a message and press Enter. Commands:
  /image PATH    attach a photo to your next message
  /concept DIR   activate a concept folder (its tokens join every answer)
  /clear         forget this conversation
  /quit          leave"""

TINY_WARNING = (
    "Running on the offline tiny model: its weights are random, so its answers are meaningless. "
    "For real answers download a LLaVA checkpoint once (e.g. `hf download {model}`) and run "
    "again, or pass --model with a local checkpoint folder."
)


def _start_chat_model(args: argparse.Namespace, say: Callable[[str], None]) -> ChatYoLLaVA:
    model = args.model
    try:
        runtime = shared_runtime(model, args.device, args.dtype)
    except YoLLaVAError as e:
        if model is not None:
            raise
        say(f"Could not load the default model: {e}")
        model = TINY_MODEL_NAME
        runtime = shared_runtime(model, args.device, args.dtype)
    if runtime.model_id == TINY_MODEL_NAME:
        say(TINY_WARNING.format(model=args.model or "llava-hf/llava-1.5-7b-hf"))
    concepts = [Concept.from_pretrained(folder, base=runtime.base) for folder in args.concept]
    return ChatYoLLaVA(
        model=model,
        device=args.device,
        dtype=args.dtype,
        max_new_tokens=args.max_tokens,
        concepts=concepts,
    )


def run_chat(
    chat: ChatYoLLaVA,
    read: Callable[[str], str],
    write: Callable[[str], None],
) -> None:
    """The chat loop: read lines, handle commands, stream answers. Ends on /quit or end of input."""
    history: list[BaseMessage] = []
    photos: list[str] = []
    write(CHAT_HELP + "\n")
    while True:
        try:
            line = read("you> ").strip()
        except EOFError:
            return
        if not line:
            continue
        command, _, argument = line.partition(" ")
        if command == "/quit":
            return
        if command == "/clear":
            history, photos = [], []
            write("(conversation cleared)\n")
            continue
        if command == "/image":
            path = Path(argument.strip()).expanduser()
            if not path.is_file():
                write(f"No photo at {str(path)!r}: give the path of an image file.\n")
                continue
            photos.append(str(path))
            write(f"(photo {path.name} attached to your next message)\n")
            continue
        if command == "/concept":
            try:
                concept = Concept.from_pretrained(argument.strip(), base=chat.runtime.base)
            except YoLLaVAError as e:
                write(f"{e}\n")
                continue
            active = [*chat.concepts, ActiveConcept.from_concept(concept)]
            chat = chat.model_copy(update={"concepts": active})
            write(f"(concept {concept.name!r} active: call it <{concept.name}>)\n")
            continue
        if command.startswith("/"):
            write(f"Unknown command {command!r}.\n{CHAT_HELP}\n")
            continue
        content: list[dict[str, str]] = [{"type": "image", "path": p} for p in photos]
        content.append({"type": "text", "text": line})
        question = HumanMessage(content=content)
        write("yollava> ")
        answer = ""
        try:
            for chunk in chat.stream([*history, question]):
                answer += chunk.text
                write(chunk.text)
        except YoLLaVAError as e:
            write(f"\n{e}\n")
            continue
        write("\n")
        photos = []
        history.extend([question, AIMessage(content=answer)])


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="yollava", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    chat = commands.add_parser("chat", help="chat in the terminal")
    chat.add_argument("--model", help="hub id, local folder or 'tiny' (default: by device)")
    chat.add_argument("--device", help="cpu, cuda or cuda:N (default: a GPU if there is one)")
    chat.add_argument("--dtype", help="bf16, fp16 or fp32 (default: bf16 on GPU, fp32 on CPU)")
    chat.add_argument("--concept", action="append", default=[], help="a concept folder to activate")
    chat.add_argument("--max-tokens", type=int, default=256, help="longest answer in tokens")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `yollava` console script."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        chat = _start_chat_model(args, lambda text: _write(text + "\n"))
        run_chat(chat, input, _write)
    except YoLLaVAError as e:
        sys.stderr.write(f"yollava: {e}\n")
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
