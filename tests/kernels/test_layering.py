"""The engine stays backend-neutral: only kernels/engine/devices.py imports a backend's own library
(TensorFlow's TFLite converter included, which kernels/engine/export.py reaches through it)."""

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


ROOT = KERNELS.parent
# Imports flow downward (DESIGN.md): kernels <- extension and kernels <- widgets; never the other way.
FORBIDDEN = {
    "kernels": ("headstart.extension", "headstart.widgets"),
    "widgets": ("headstart.extension",),
}


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at its top or inside a function."""
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
    return modules


def test_no_layer_imports_one_above_it() -> None:
    offenders = {}
    for layer, above in FORBIDDEN.items():
        for path in (ROOT / layer).rglob("*.py"):
            wrong = sorted(m for m in imported_modules(path) if m.startswith(above))
            if wrong:
                offenders[str(path.relative_to(ROOT))] = wrong
    assert offenders == {}


def test_the_layering_check_sees_a_lazy_import(tmp_path: Path) -> None:
    source = tmp_path / "lazy.py"
    source.write_text("def f():\n    from headstart.extension.manager import Catalog\n")
    assert imported_modules(source) == {"headstart.extension.manager"}
