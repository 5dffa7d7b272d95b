"""The `yollava` command line of the core: `yollava chat` (terminal chat), `yollava eval DATASET`
(the Yo'LLaVA evaluation protocol) and `yollava download-pool`. The console script
(`yollava_agent.ui.cli`) adds the commands on the concept store (`teach`, `concepts`, `forget`,
and the store's concepts in `chat`) and `ui`, which the core cannot import.

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
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from tqdm import tqdm

from yollava_agent.chat_model import ChatYoLLaVA
from yollava_agent.concept import Concept
from yollava_agent.errors import YoLLaVAError
from yollava_agent.evaluation.dataset import load_dataset
from yollava_agent.evaluation.harness import METHODS, EvalConfig, evaluate
from yollava_agent.evaluation.report import summary_table, write_report
from yollava_agent.loading import load_llava, runtime_or_tiny
from yollava_agent.paths import data_home
from yollava_agent.sources import ActiveConcept
from yollava_agent.tiny import TINY_BUILDS
from yollava_agent.training.config import TrainingConfig
from yollava_agent.training.negatives import ClipConfig
from yollava_agent.training.pool import COCO_VAL2017_URL, download_pool

CHAT_HELP = """Type a message and press Enter. Commands:
  /image PATH    attach a photo to your next message
  /concept DIR   activate a concept folder (its tokens join every answer)
  /clear         forget this conversation
  /quit          leave"""

MODEL_HELP = (
    f"hub id, local folder, or a built-in offline tiny model ({', '.join(TINY_BUILDS)}); "
    "default: by device"
)


def start_chat_model(args: argparse.Namespace, say: Callable[[str], None]) -> ChatYoLLaVA:
    """The chat model of `yollava chat`: its model (or the tiny fallback, said) and concepts."""
    runtime, notice = runtime_or_tiny(args.model, args.device, args.dtype)
    if notice:
        say(notice)
    concepts = [Concept.from_pretrained(folder, base=runtime.base) for folder in args.concept]
    return ChatYoLLaVA(
        model=runtime.model_id,
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


def _clip_config(args: argparse.Namespace) -> ClipConfig:
    pretrained = None if args.clip_pretrained.lower() == "none" else args.clip_pretrained
    return ClipConfig(model_name=clip_model_name(args.clip_model), pretrained=pretrained)


def _eval(args: argparse.Namespace) -> int:
    if args.benchmark is not None:
        return _benchmark(args)
    if args.dataset is None:
        msg = "Name a dataset folder (yollava eval DATASET) or a benchmark (--benchmark toyworld)."
        raise YoLLaVAError(msg)
    if args.ablation:
        msg = "--ablation draws the toyworld benchmark's curves; add --benchmark toyworld."
        raise YoLLaVAError(msg)
    if args.base is not None:
        msg = f"--base {args.base} chooses the base of --benchmark toyworld; for a dataset, name the model with --model."
        raise YoLLaVAError(msg)
    # A broken dataset or setting fails before the model loads.
    dataset = load_dataset(args.dataset)
    config = EvalConfig(
        methods=args.methods,
        concepts=args.concepts,
        training=TrainingConfig(
            epochs=15 if args.epochs is None else args.epochs,
            batch_size=1 if args.batch_size is None else args.batch_size,
            seed=args.seed,
            subject_kind=args.kind,
        ),
        clip=_clip_config(args),
        extra_pool=args.negatives,
        batch_size=args.eval_batch_size,
        cache_dir=data_home() / "clip-cache",
    )
    runtime = load_llava(args.model, args.device, args.dtype)
    report = evaluate(dataset, runtime, config)
    out = args.out if args.out is not None else Path(f"eval-{Path(args.dataset).resolve().name}")
    paths = write_report(report, out)
    _write(summary_table(report) + "\n\n")
    _write("".join(f"{kind}: {path}\n" for kind, path in paths.items()))
    return 0


def _benchmark(args: argparse.Namespace) -> int:
    from yollava_agent.toyworld.benchmark import (
        DEFAULT_BASE,
        ceiling_sentence,
        generic_markdown,
        negatives_markdown,
        run_benchmark,
    )

    if args.dataset is not None:
        msg = f"--benchmark {args.benchmark} makes its own dataset; drop {str(args.dataset)!r}."
        raise YoLLaVAError(msg)
    fixed = [flag for flag, value in (("--epochs", args.epochs), ("--batch-size", args.batch_size)) if value is not None]
    if fixed:
        msg = (
            f"{' and '.join(fixed)} do not apply to --benchmark {args.benchmark}: its recipe is fixed "
            "so that its numbers compare with the README's. Drop them."
        )
        raise YoLLaVAError(msg)
    out = args.out if args.out is not None else Path(f"eval-{args.benchmark}")
    run = run_benchmark(
        out,
        args.concepts,
        args.methods,
        args.seed,
        base=args.base or DEFAULT_BASE,
        ablation=args.ablation or (),
    )
    _write(summary_table(run.report) + "\n\n")
    _write(ceiling_sentence(run.ceiling) + "\n\n")
    _write(negatives_markdown(run.negatives) + "\n\n")
    if run.generic is not None:
        _write(generic_markdown(run.generic) + "\n\n")
    _write("".join(f"{kind}: {path}\n" for kind, path in run.paths.items()))
    return 0


def _download_pool(args: argparse.Namespace) -> int:
    with tqdm(desc="download pool", unit="B", unit_scale=True) as bar:

        def show(done: int, total: int | None) -> None:
            bar.total = total
            bar.update(done - bar.n)

        folder = download_pool(args.url, args.name, on_progress=show)
    _write(f"Negative pool ready in {folder}\n")
    return 0


def clip_model_name(value: str) -> str:
    """An open_clip model name, or the name of a custom config file that gets registered."""
    path = Path(value).expanduser()
    if path.suffix != ".json":
        return value
    if not path.is_file():
        msg = f"CLIP model config {str(path)!r} does not exist."
        raise ValueError(msg)
    import open_clip  # slow to import: only when a custom config is named

    open_clip.add_model_config(path)
    return path.stem


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def build_parser() -> tuple[argparse.ArgumentParser, Any]:
    """The `yollava` parser and its sub-command group (the UI package adds `ui` to it)."""
    parser = argparse.ArgumentParser(prog="yollava", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    chat = commands.add_parser("chat", help="chat in the terminal")
    chat.add_argument("--model", help=MODEL_HELP)
    chat.add_argument("--device", help="cpu, cuda or cuda:N (default: a GPU if there is one)")
    chat.add_argument("--dtype", help="bf16, fp16 or fp32 (default: bf16 on GPU, fp32 on CPU)")
    chat.add_argument("--concept", action="append", default=[], help="a concept folder to activate")
    chat.add_argument("--max-tokens", type=int, default=256, help="longest answer in tokens")
    chat.set_defaults(handler=_chat)

    pool_parser = commands.add_parser(
        "download-pool", help="download the default negative pool (COCO val2017) once"
    )
    pool_parser.add_argument("--url", default=COCO_VAL2017_URL, help="a zip of photos (file:// works)")
    pool_parser.add_argument("--name", default=None, help="folder name below negative-pool/")
    pool_parser.set_defaults(handler=_download_pool)

    eval_parser = commands.add_parser(
        "eval", help="evaluate methods side by side on a dataset (the Yo'LLaVA protocol)"
    )
    eval_parser.add_argument(
        "dataset", type=Path, nargs="?",
        help="a folder of DATASET/<concept>/train/* and test/* photos, optional "
        "<concept>/description.txt and qa.json",
    )
    eval_parser.add_argument(
        "--benchmark", choices=["toyworld"],
        help="run a built-in benchmark instead: its dataset, base model, CLIP and recipe",
    )
    eval_parser.add_argument(
        "--base", metavar="BASE",
        help="with --benchmark toyworld: its base, 'photos' (the committed one, default) or a saved LLaVA folder",
    )
    eval_parser.add_argument(
        "--ablation", nargs="+", metavar="NAME",
        help="with --benchmark toyworld: also draw the paper's ablation curves (train photos "
        "1/3/5, latent tokens 0/4/16) on these subjects",
    )
    eval_parser.add_argument(
        "--concepts", nargs="+", metavar="NAME",
        help="evaluate only these concepts (all others stay negatives); default: all",
    )
    eval_parser.add_argument("--model", help=MODEL_HELP)
    eval_parser.add_argument("--device", help="cpu, cuda or cuda:N")
    eval_parser.add_argument("--dtype", help="bf16, fp16 or fp32")
    eval_parser.add_argument(
        "--methods", nargs="+", choices=METHODS, default=list(METHODS), metavar="METHOD",
        help=f"which methods to compare (default: all of {', '.join(METHODS)})",
    )
    eval_parser.add_argument(
        "--out", type=Path, default=None,
        help="folder for results.json, results.md and results.png (default: ./eval-DATASET)",
    )
    eval_parser.add_argument("--epochs", type=int, help="training epochs per concept (default 15)")
    eval_parser.add_argument("--batch-size", type=int, help="training batch size (default 1)")
    eval_parser.add_argument("--seed", type=int, default=0)
    eval_parser.add_argument("--kind", choices=["object", "person"], default="object")
    eval_parser.add_argument(
        "--negatives", action="append", default=[], type=Path,
        help="a folder of extra photos to mine training negatives from (repeatable)",
    )
    eval_parser.add_argument(
        "--eval-batch-size", type=int, default=8, help="questions per forward pass while scoring"
    )
    eval_parser.add_argument(
        "--clip-model", default="ViT-B-32",
        help="open_clip model name, a model config .json, or 'tiny' (offline test CLIP)",
    )
    eval_parser.add_argument(
        "--clip-pretrained", default="laion2b_s34b_b79k",
        help="open_clip pretrained tag, a local weights file, or 'none' for random weights",
    )
    eval_parser.set_defaults(handler=_eval)

    return parser, commands


def main(argv: Sequence[str] | None = None, parser: argparse.ArgumentParser | None = None) -> int:
    """Run a `yollava` sub-command (the console script enters through `yollava_agent.ui.cli`)."""
    args = (parser or build_parser()[0]).parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.handler(args)
    except (YoLLaVAError, ValueError, OSError) as e:
        sys.stderr.write(f"yollava: {e}\n")
        return 1
    except KeyboardInterrupt:
        return 130


def _chat(args: argparse.Namespace) -> int:
    chat = start_chat_model(args, lambda text: _write(text + "\n"))
    run_chat(chat, input, _write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
