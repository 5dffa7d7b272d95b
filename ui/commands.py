"""`yollava teach`, `yollava concepts`, `yollava forget` and `yollava chat` on the concept store.

The command line and the app share one data home and one listing per user: these commands open
the same `ConceptStore` the app uses (`$YOLLAVA_HOME`, or `--data`), as the same user (`--user`,
"local" by default, the app's user without sign-in), and `teach` trains through the same
`TrainingQueue`, in the foreground with a tqdm bar. Everything that can be checked without a model
(the name's form, the photo count, every photo, the description's length) is checked before the
model or CLIP loads, so a refusal takes a moment, not the model's loading time.

Chosen not to do: several processes on one embedded store at once. Chroma's embedded database is
for one process; run these while the app is stopped, or point both at a Chroma server
(`--chroma-host`, with the same `--data` folder).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from yollava_agent.chat_model import ChatYoLLaVA
from yollava_agent.cli import run_chat, start_chat_model
from yollava_agent.concept import Concept, validate_concept_name
from yollava_agent.errors import ModelLoadError, YoLLaVAError
from yollava_agent.loading import in_hub_cache, load_llava
from yollava_agent.memory import ConceptStore, StoreConceptSource
from yollava_agent.memory.store import MAX_DESCRIPTION_CHARS, checked_text
from yollava_agent.paths import data_home
from yollava_agent.tools.queue import TrainingQueue
from yollava_agent.training.config import TrainingConfig, check_teach_photo_count
from yollava_agent.training.negatives import ClipConfig, ClipEmbedder
from yollava_agent.training.pool import default_pool_dir
from yollava_agent.training.teach import read_photos

logger = logging.getLogger(__name__)

LOCAL_USER = "local"
"""The app's user when it runs without sign-in."""
POLL_SECONDS = 0.2


def add_store_arguments(parser: argparse.ArgumentParser) -> None:
    """`--data`, `--chroma-host/--chroma-port` and `--user`: which store and whose concepts."""
    parser.add_argument("--data", type=Path, help="data folder (default: $YOLLAVA_HOME or ~/.local/share/yollava)")
    add_chroma_arguments(parser)
    parser.add_argument("--user", default=LOCAL_USER, help="whose concepts (default 'local', the app's user without --auth)")


def add_chroma_arguments(parser: argparse.ArgumentParser) -> None:
    """`--chroma-host` and `--chroma-port`: a Chroma server instead of the embedded store."""
    parser.add_argument(
        "--chroma-host",
        help="a Chroma server (`chroma run`) for the records instead of the embedded store; every "
        "process on it must share the same --data folder",
    )
    parser.add_argument(
        "--chroma-port", type=int, default=8000, help="the Chroma server's port (default 8000)"
    )


def open_store(args: argparse.Namespace, home: Path, **options: Any) -> ConceptStore:
    """The store of the command line: embedded in `home`, or on `--chroma-host`."""
    return ConceptStore(home, host=args.chroma_host, port=args.chroma_port, **options)


def add_clip_arguments(parser: argparse.ArgumentParser) -> None:
    """Which CLIP embeds photos for the store (recognition and hard negatives)."""
    parser.add_argument("--clip-model", default="ViT-B-32", help="open_clip model name, a model config .json, or 'tiny'")
    parser.add_argument(
        "--clip-pretrained", default="laion2b_s34b_b79k",
        help="open_clip tag (downloaded once), a local weights file, or 'none' for random weights",
    )


def clip_config(args: argparse.Namespace) -> ClipConfig:
    """The CLIP settings of the command line."""
    from yollava_agent.cli import clip_model_name

    pretrained = None if args.clip_pretrained.lower() == "none" else args.clip_pretrained
    return ClipConfig(model_name=clip_model_name(args.clip_model), pretrained=pretrained)


CLIP_NOTICE = (
    "CLIP weights {tag!r} for {model} are not in the Hugging Face cache, so photo recognition "
    "and hard negatives use random weights and mean nothing. Download them once where there is "
    "network (run `yollava teach` once), or pass --clip-pretrained /path/to/weights."
)


def clip_or_random(model_name: str, pretrained: str | None) -> tuple[ClipConfig, str]:
    """The CLIP config to use, falling back to random weights (with a notice) if unavailable."""
    config = ClipConfig(model_name=model_name, pretrained=pretrained)
    if pretrained is None:
        return config, ""
    notice = CLIP_NOTICE.format(tag=pretrained, model=model_name)
    if not Path(pretrained).is_file() and not _clip_cached(model_name, pretrained):
        logger.warning("CLIP %s %s is not in the Hugging Face cache: random weights", model_name, pretrained)
        return ClipConfig(model_name=model_name), notice
    try:
        ClipEmbedder(config).dim  # noqa: B018 - builds the model, or fails at once offline
    except ModelLoadError as e:
        logger.warning("CLIP fallback to random weights: %s", e)
        return ClipConfig(model_name=model_name), notice
    return config, ""


def _clip_cached(model_name: str, tag: str) -> bool:
    import open_clip

    hub = (open_clip.get_pretrained_cfg(model_name, tag) or {}).get("hf_hub", "").rstrip("/")
    files = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
    return bool(hub) and any(in_hub_cache(hub, name) for name in files)


def _home(args: argparse.Namespace) -> Path:
    return Path(args.data).expanduser() if args.data else data_home()


def _pool_folders(extra: list[Path]) -> list[Path]:
    pools = sorted(p for p in default_pool_dir().glob("*") if p.is_dir()) if default_pool_dir().is_dir() else []
    return [*extra, *pools]


def teach_command(args: argparse.Namespace) -> int:
    """Teach a concept into the store and train it now, with a progress bar."""
    validate_concept_name(args.name)
    description = checked_text(args.description, MAX_DESCRIPTION_CHARS, f"The description of {args.name!r}")
    check_teach_photo_count(args.name, len(set(args.photos)))
    read_photos(args.photos)  # every photo readable, named as given, before anything loads
    config = TrainingConfig(
        epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, subject_kind=args.kind
    )
    runtime = load_llava(args.model, args.device, args.dtype)
    validate_concept_name(args.name, runtime.base_vocabulary, config.num_latent_tokens, runtime.model_id)
    store = open_store(
        args,
        _home(args),
        clip=clip_config(args),
        pool_folders=_pool_folders(args.negatives),
        base_vocabulary=runtime.base_vocabulary,
    )
    store.add_concept(args.user, args.name, args.photos, description)
    queue = TrainingQueue(store, config=config, runtime_factory=lambda: runtime)
    try:
        job = queue.submit(args.user, args.name)
        with tqdm(total=config.epochs, desc=f"teach {args.name}", unit="epoch") as bar:
            while not job.finished.wait(POLL_SECONDS):
                if (event := job.progress) is not None:
                    bar.n = event.epoch - 1 + event.step / event.steps_per_epoch
                    accuracy = "-" if event.accuracy is None else f"{event.accuracy:.2f}"
                    bar.set_postfix(loss=f"{event.loss:.3f}", acc=accuracy, eta=f"{event.eta_seconds:.0f}s")
                    bar.refresh()
    except KeyboardInterrupt:
        queue.cancel(args.user, args.name)
        raise
    finally:
        queue.close()
    if job.state != "done":
        msg = (
            f"Training {args.name!r} {job.state}: {job.error or 'stopped'}. It stays recognisable in "
            f"photos; `yollava teach {args.name}` again after `yollava forget {args.name}` retrains it."
        )
        raise YoLLaVAError(msg)
    record = store.get_concept(args.user, args.name)
    concept = Concept.from_pretrained(record.artifact_path)
    stats = concept.training
    _write(
        f"Taught {concept.name!r} (version {concept.version}) in {stats['seconds']} s: best epoch "
        f"{stats['best_epoch']}, recognition accuracy {stats['best_accuracy']}, saved to "
        f"{record.artifact_path}\n"
    )
    return 0


def concepts_command(args: argparse.Namespace) -> int:
    """List the user's concepts, as the app's gallery shows them."""
    store = open_store(args, _home(args), clip=clip_config(args))
    records = store.list_concepts(args.user)
    if not records:
        _write(
            f"No concepts for user {args.user!r} in {store.home}. Teach one with "
            "`yollava teach NAME PHOTO...` or `/teach NAME` in the app.\n"
        )
        return 0
    for record in records:
        facts = len(store.list_facts(args.user, record.name))
        line = f"{record.name}\t{record.status}\t{record.photo_count} photos\t{facts} facts"
        if record.artifact_path:
            try:
                concept = Concept.from_pretrained(record.artifact_path)
                stats = concept.training
                line += (
                    f"\tversion {concept.version}\tbase {concept.base.model_id}"
                    f"\taccuracy {stats.get('best_accuracy')}\tseconds {stats.get('seconds')}"
                )
            except YoLLaVAError as e:
                line += f"\tbroken artifact: {e}"
        if record.error:
            line += f"\t{record.error}"
        _write(line + "\n")
    return 0


def forget_command(args: argparse.Namespace) -> int:
    """Forget a concept: its photos, facts, description and trained tokens."""
    store = open_store(args, _home(args), clip=clip_config(args))
    record = store.get_concept(args.user, args.name)
    store.forget(args.user, args.name)
    _write(f"Forgot {record.name!r}: its {record.photo_count} photos, facts and trained tokens are deleted.\n")
    return 0


def chat_command(args: argparse.Namespace) -> int:
    """The terminal chat, with the user's stored concepts found by name or in photos."""
    chat: ChatYoLLaVA = start_chat_model(args, lambda text: _write(text + "\n"))
    pretrained = None if args.clip_pretrained.lower() == "none" else args.clip_pretrained
    clip, notice = clip_or_random(args.clip_model, pretrained)
    if notice:
        _write(notice + "\n")
    store = open_store(args, _home(args), clip=clip)
    chat = chat.model_copy(update={"concept_source": StoreConceptSource(store, args.user)})
    run_chat(chat, input, _write)
    return 0


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()
