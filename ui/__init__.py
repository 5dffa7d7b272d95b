"""The Gradio chat app (`yollava_agent.ui`): `build_app(ctx)` and its handlers; `yollava ui` runs it."""

from yollava_agent.ui.app import (
    HELP,
    AppContext,
    build_app,
    concept_gallery,
    load_conversation,
    loss_curves,
    respond,
    run_command,
    training_progress,
)

__all__ = [
    "HELP",
    "AppContext",
    "build_app",
    "concept_gallery",
    "load_conversation",
    "loss_curves",
    "respond",
    "run_command",
    "training_progress",
]
