"""`yollava ui` (what `make run` starts): offline it serves the app on the tiny model and says so."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.ui.test_browser import _free_port

REPO = Path(__file__).resolve().parents[2]


def test_yollava_ui_starts_offline_on_127_0_0_1_with_a_plain_notice(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    server = subprocess.Popen(
        [sys.executable, "-m", "yollava_agent.ui.cli", "ui", "--port", str(port), "--data", str(tmp_path / "data")],
        env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        page = ""
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and server.poll() is None:
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read().decode()
                break
            except OSError:
                time.sleep(0.5)
        assert page, f"the app did not answer on 127.0.0.1:{port}"
        assert "offline tiny model" in page and "meaningless" in page
        assert "hf download llava-hf/llava-1.5-7b-hf" in page
        assert (tmp_path / "data" / "chroma").is_dir()
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0]
    assert "127.0.0.1" in output and "0.0.0.0" not in output
