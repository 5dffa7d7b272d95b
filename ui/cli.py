"""The `yollava` console script: the core's commands, the commands on the concept store (`teach`,
`concepts`, `forget`, and `chat` with the store's concepts: `commands.py`) and `yollava ui`, the
Gradio app.

It lives in the UI package because the core never imports memory, tools or the UI; gradio itself is
imported only when `yollava ui` runs, so the other commands start as fast as before.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from pathlib import Path

from yollava_agent.cli import build_parser
from yollava_agent.cli import main as core_main
from yollava_agent.ui.commands import (
    add_chroma_arguments,
    add_clip_arguments,
    add_store_arguments,
    chat_command,
    concepts_command,
    forget_command,
    teach_command,
)


def add_ui_arguments(parser: argparse.ArgumentParser) -> None:
    """The `yollava ui` options."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--model", help="hub id, local folder or 'tiny' (default: by device)")
    parser.add_argument("--device", help="cpu, cuda or cuda:N")
    parser.add_argument("--dtype", help="bf16, fp16 or fp32")
    parser.add_argument("--data", help="data folder (default: $YOLLAVA_HOME or ~/.local/share/yollava)")
    add_chroma_arguments(parser)
    parser.add_argument(
        "--ray-address",
        help="train on a Ray cluster: 'auto' (one started here with `ray start --head`) or "
        "HOST:PORT of its head (needs the ray extra; default: a thread of this process)",
    )
    parser.add_argument(
        "--ray-workers", type=int,
        help="training actors of this replica (default: as many as the cluster holds; with "
        "several replicas on one cluster, give each its share)",
    )
    parser.add_argument(
        "--auth", action="append", default=[], metavar="USER:PASSWORD",
        help="require sign-in; each user sees only their own concepts (repeatable)",
    )
    parser.add_argument("--clip-model", default="ViT-B-32", help="open_clip model name, or 'tiny'")
    parser.add_argument(
        "--clip-pretrained", default="laion2b_s34b_b79k", help="open_clip tag, weights file, or 'none'"
    )
    parser.add_argument("--epochs", type=int, default=15, help="training epochs per concept")
    parser.add_argument("--batch-size", type=int, default=8, help="training batch size")
    parser.add_argument("--max-tokens", type=int, default=256, help="longest answer in tokens")


def _ui(args: argparse.Namespace) -> int:
    from yollava_agent.ui.launch import serve

    return serve(args)


def add_store_commands(commands: argparse._SubParsersAction, chat: argparse.ArgumentParser) -> None:
    """`teach`, `concepts` and `forget` on the concept store, and the store's concepts in `chat`."""
    teach = commands.add_parser("teach", help="teach a concept from photos and train it now")
    teach.add_argument("name", help="the concept's name, e.g. bo")
    teach.add_argument("photos", nargs="+", help="3 to 10 photos of it")
    teach.add_argument(
        "--negatives", action="append", default=[], type=Path,
        help="a folder of other photos to mine negatives from (repeatable)",
    )
    teach.add_argument("--model", help="hub id, local folder or a tiny model (default: by device)")
    teach.add_argument("--device", help="cpu, cuda or cuda:N")
    teach.add_argument("--dtype", help="bf16, fp16 or fp32")
    teach.add_argument("--description", default="", help="a few words about it")
    teach.add_argument("--kind", choices=["object", "person"], default="object")
    teach.add_argument("--epochs", type=int, default=15)
    teach.add_argument("--batch-size", type=int, default=8)
    teach.add_argument("--seed", type=int, default=0)
    add_store_arguments(teach)
    add_clip_arguments(teach)
    teach.set_defaults(handler=teach_command)

    concepts = commands.add_parser("concepts", help="list a user's concepts (the app's too)")
    add_store_arguments(concepts)
    add_clip_arguments(concepts)
    concepts.set_defaults(handler=concepts_command)

    forget = commands.add_parser("forget", help="forget a concept and everything about it")
    forget.add_argument("name", help="the concept to forget")
    add_store_arguments(forget)
    add_clip_arguments(forget)
    forget.set_defaults(handler=forget_command)

    add_store_arguments(chat)
    add_clip_arguments(chat)
    chat.set_defaults(handler=chat_command)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `yollava` console script."""
    parser, commands = build_parser()
    add_store_commands(commands, commands.choices["chat"])
    ui_parser = commands.add_parser("ui", help="the Gradio chat app (the main job)")
    add_ui_arguments(ui_parser)
    ui_parser.set_defaults(handler=_ui)
    return core_main(argv, parser)


if __name__ == "__main__":
    raise SystemExit(main())
