"""`yollava ui`: assemble the app's parts from command-line settings and serve it.

The model falls back to the offline tiny one (with a plain notice on the page) when no model was
named and the default cannot be loaded; CLIP falls back to random weights the same way, so the app
always starts. Binds 127.0.0.1 unless `--host` says otherwise. Several replicas share one Chroma
server (`--chroma-host`) and one data folder; `--ray-address` trains on a Ray cluster.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from yollava_agent.chat_model import ChatYoLLaVA
from yollava_agent.loading import runtime_or_tiny
from yollava_agent.errors import YoLLaVAError
from yollava_agent.paths import data_home
from yollava_agent.tools.queue import TrainingBackend, TrainingQueue
from yollava_agent.training.config import TrainingConfig
from yollava_agent.training.pool import default_pool_dir
from yollava_agent.ui.app import AppContext, build_app, launch_app
from yollava_agent.ui.commands import clip_or_random, open_store

logger = logging.getLogger(__name__)

def make_context(args: argparse.Namespace) -> AppContext:
    """Load the model, CLIP, store and queue for the app."""
    home = Path(args.data) if args.data else data_home()
    runtime, notice = runtime_or_tiny(args.model, args.device, args.dtype)
    pretrained = None if args.clip_pretrained.lower() == "none" else args.clip_pretrained
    clip, clip_notice = clip_or_random(args.clip_model, pretrained)
    pools = [p for p in default_pool_dir().glob("*") if p.is_dir()] if default_pool_dir().is_dir() else []
    store = open_store(
        args, home, clip=clip, pool_folders=pools, base_vocabulary=runtime.base_vocabulary
    )
    config = TrainingConfig(epochs=args.epochs, batch_size=args.batch_size)
    queue = TrainingQueue(
        store, runtime.model_id, args.device, args.dtype, config=config, backend=_backend(args)
    )
    chat_model = ChatYoLLaVA(
        model=runtime.model_id, device=args.device, dtype=args.dtype, max_new_tokens=args.max_tokens
    )
    return AppContext(
        chat_model=chat_model,
        store=store,
        queue=queue,
        history_url=f"sqlite:///{home / 'chats.sqlite'}",
        uploads=home / "uploads",
        notice=" ".join(n for n in (notice, clip_notice) if n),
    )


def _backend(args: argparse.Namespace) -> TrainingBackend | None:
    """Ray when `--ray-address` is given (imported only then), else the queue's own thread."""
    if not args.ray_address:
        return None
    try:
        from yollava_agent.tools.ray_backend import RayBackend
    except ImportError as e:
        msg = (
            f"--ray-address {args.ray_address} needs Ray, which is not installed ({e}). Install "
            "it with `pip install 'yollava-agent[ray]'`, or leave out --ray-address."
        )
        raise YoLLaVAError(msg) from e
    return RayBackend(args.ray_address, num_workers=args.ray_workers)


def serve(args: argparse.Namespace) -> int:
    """Build and launch the app; blocks until stopped."""
    auth = []
    for pair in args.auth:
        user, sep, password = pair.partition(":")
        if not sep or not user or not password:
            msg = f"--auth {pair!r} must be USER:PASSWORD."
            raise ValueError(msg)
        auth.append((user, password))
    ctx = make_context(args)
    app = build_app(ctx)
    launch_app(app, server_name=args.host, server_port=args.port, auth=auth or None)
    return 0
