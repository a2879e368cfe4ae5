"""The packages depend one way: ``reid_models`` <- ``engines`` <- ``pipeline`` <- applications.

Every ``import`` in the project's source, module-level or inside a function, is read with
``ast``; a module may import its own layer and the layers below it, never one above. The
violations known today are listed in :data:`KNOWN_VIOLATIONS`, to be removed one by one: the
test also fails when a listed import is gone, so the list only shrinks.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPOSITORY_ROOT

LAYERS: dict[str, int] = {
    "reid_models": 0,  # models, losses, datasets, training: imports none of the others
    "engines": 1,  # export and runtimes
    "pipeline": 2,  # the stages
    "run": 3,  # applications: the commands, training data, tools and benchmarks
    "crosscam": 3,
    "training": 3,
    "tools": 3,
    "benchmarks": 3,
    "examples": 3,
}
"""Top-level package (or module) -> layer; a module may import layers <= its own."""

KNOWN_VIOLATIONS: frozenset[tuple[str, str]] = frozenset()
"""``(importing module, imported module)`` pairs that break the order today."""


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPOSITORY_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imported_modules(path: Path, module: str) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                names.add(".".join([*base, *([node.module] if node.module else [])]))
            elif node.module:
                names.add(node.module)
    return names


def _source_files() -> list[Path]:
    files: list[Path] = []
    for top in LAYERS:
        if (REPOSITORY_ROOT / f"{top}.py").is_file():
            files.append(REPOSITORY_ROOT / f"{top}.py")
        if (REPOSITORY_ROOT / top).is_dir():
            files.extend(sorted((REPOSITORY_ROOT / top).rglob("*.py")))
    return files


def layer_violations() -> set[tuple[str, str]]:
    """Every ``(importing module, imported module)`` that points to a higher layer."""
    violations = set()
    for path in _source_files():
        module = _module_name(path)
        layer = LAYERS[module.split(".")[0]]
        for imported in _imported_modules(path, module):
            imported_layer = LAYERS.get(imported.split(".")[0])
            if imported_layer is not None and imported_layer > layer:
                violations.add((module, imported))
    return violations


def test_lower_layers_never_import_higher_ones() -> None:
    new = sorted(layer_violations() - KNOWN_VIOLATIONS)
    assert not new, "imports against the layer order (reid_models <- engines <- pipeline <- " + (
        "applications): " + ", ".join(f"{module} imports {imported}" for module, imported in new)
    )


def test_known_violations_are_still_there() -> None:
    gone = sorted(KNOWN_VIOLATIONS - layer_violations())
    assert not gone, f"fixed, remove from KNOWN_VIOLATIONS: {gone}"


def test_the_check_sees_function_local_imports(tmp_path: Path) -> None:
    source = tmp_path / "lower.py"
    source.write_text("def load():\n    from pipeline.config import load_config\n")
    assert _imported_modules(source, "engines.lower") == {"pipeline.config"}


def test_every_package_has_a_layer() -> None:
    packages = {path.parent.name for path in REPOSITORY_ROOT.glob("*/__init__.py")} | {
        path.stem for path in REPOSITORY_ROOT.glob("*.py")
    }
    assert packages - {"tests"} <= set(LAYERS)
