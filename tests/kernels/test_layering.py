"""The engine stays backend-neutral: only kernels/engine/devices.py imports a backend's own library."""

from __future__ import annotations

import ast
from pathlib import Path

KERNELS = Path(__file__).resolve().parents[2] / "kernels"
BACKEND_LIBRARIES = {"tensorflow", "jax", "jaxlib", "torch"}
THE_DOOR = KERNELS / "engine" / "devices.py"


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_only_devices_imports_a_backend_library() -> None:
    offenders = {
        str(path.relative_to(KERNELS)): sorted(imported_roots(path) & BACKEND_LIBRARIES)
        for path in KERNELS.rglob("*.py")
        if path != THE_DOOR and imported_roots(path) & BACKEND_LIBRARIES
    }
    assert offenders == {}
    assert {"tensorflow", "jax", "torch"} <= imported_roots(THE_DOOR)  # the door is where they went
