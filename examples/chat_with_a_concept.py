"""Chat with a concept on the offline tiny model: inject `<bo>`, ask with a photo, stream the answer.

Runs offline in seconds. The tiny model's weights are random, so the answer is gibberish: this
shows the mechanics (concept folder, photo block, streaming), not quality. Pass a real checkpoint
id or folder as the first argument for real answers.
"""

from __future__ import annotations

import base64
import io
import sys
import tempfile

import torch
from langchain_core.messages import HumanMessage
from PIL import Image

from yollava_agent import ChatYoLLaVA, Concept, shared_runtime


def main(model: str = "tiny") -> None:
    runtime = shared_runtime(model)
    hidden = runtime.base.hidden_size
    untrained = Concept("bo", torch.randn(17, hidden) * 0.02, torch.randn(17, hidden) * 0.02, runtime.base)
    with tempfile.TemporaryDirectory() as folder:
        bo = Concept.from_pretrained(untrained.save_pretrained(f"{folder}/bo"), base=runtime.base)
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (180, 120, 60)).save(buffer, format="PNG")
    photo = {"type": "image", "base64": base64.b64encode(buffer.getvalue()).decode(), "mime_type": "image/png"}
    chat = ChatYoLLaVA(model=model, concepts=[bo], max_tokens=32)
    for chunk in chat.stream([HumanMessage(content=[photo, {"type": "text", "text": "Is <bo> here?"}])]):
        print(chunk.text, end="", flush=True)
    print()


if __name__ == "__main__":
    main(*sys.argv[1:])
