"""The wheel ships tools/, memory/ and ui/ inside `yollava_agent`, and the core imports none of them."""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path
from tests.conftest import HANG_SECONDS

REPO = Path(__file__).resolve().parents[2]


def test_wheel_maps_the_top_level_folders_into_the_package(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
         "--wheel-dir", str(tmp_path), str(REPO)],
        check=True,
        timeout=HANG_SECONDS,
        cwd=tmp_path,
    )
    (wheel,) = tmp_path.glob("yollava_agent-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for package in ("tools", "memory", "ui"):
        assert f"yollava_agent/{package}/__init__.py" in names
    sources = {p.relative_to(REPO).as_posix() for p in (REPO / "yollava_agent").rglob("*.py")}
    assert sources <= set(names), "core modules missing from the wheel"
    weights = {
        p.relative_to(REPO).as_posix()
        for p in (REPO / "yollava_agent" / "toyworld" / "weights").rglob("*")
        if p.is_file()
    }
    assert weights and weights <= set(names), "the toyworld weights are missing from the wheel"
    top_level = {name.split("/")[0] for name in names}
    assert top_level == {"yollava_agent", wheel.name.split("-")[0] + "-0.1.0.dist-info"}
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "yollava = yollava_agent.ui.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_core_imports_none_of_memory_tools_or_ui() -> None:
    forbidden = ("yollava_agent.memory", "yollava_agent.tools", "yollava_agent.ui", "memory", "tools", "ui")
    for path in (REPO / "yollava_agent").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            else:
                continue
            for module in modules:
                assert not module.startswith(forbidden), f"{path.name} imports {module}"


def _module_level_imports(path: Path) -> list[str]:
    modules = []
    for node in ast.parse(path.read_text()).body:  # the module's own statements, not functions'
        if isinstance(node, ast.Import):
            modules.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            modules.append(node.module or "")
    return modules


def test_ray_stays_optional() -> None:
    """Only tools/ray_backend.py imports ray, and nothing imports it when the module loads (the
    command line imports it for --ray-address only): without the `ray` extra all else works."""
    folders = ("yollava_agent", "memory", "tools", "ui")
    shipped = [path for folder in folders for path in (REPO / folder).rglob("*.py")]
    assert REPO / "tools" / "ray_backend.py" in shipped
    for path in shipped:
        modules = _module_level_imports(path)
        if path.name != "ray_backend.py":
            assert not [m for m in modules if m == "ray" or m.startswith("ray.")], path
        assert not [m for m in modules if m.endswith("ray_backend")], path
    extras = (REPO / "pyproject.toml").read_text()
    assert 'ray = [\n    "ray>=' in extras and "'.[test,ray]'" in (REPO / "Makefile").read_text()
