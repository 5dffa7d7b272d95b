"""The `yollava` console script: the core's commands plus `yollava ui`, the Gradio app.

It lives in the UI package because the core never imports the UI; gradio itself is imported only
when `yollava ui` runs, so `yollava chat` and `yollava teach` start as fast as before.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from yollava_agent.cli import build_parser
from yollava_agent.cli import main as core_main


def add_ui_arguments(parser: argparse.ArgumentParser) -> None:
    """The `yollava ui` options."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--model", help="hub id, local folder or 'tiny' (default: by device)")
    parser.add_argument("--device", help="cpu, cuda or cuda:N")
    parser.add_argument("--dtype", help="bf16, fp16 or fp32")
    parser.add_argument("--data", help="data folder (default: $YOLLAVA_HOME or ~/.local/share/yollava)")
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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `yollava` console script."""
    parser, commands = build_parser()
    ui_parser = commands.add_parser("ui", help="the Gradio chat app (the main job)")
    add_ui_arguments(ui_parser)
    ui_parser.set_defaults(handler=_ui)
    return core_main(argv, parser)


if __name__ == "__main__":
    raise SystemExit(main())
