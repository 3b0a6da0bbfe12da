from __future__ import annotations

import ast
from pathlib import Path

import kernel_compat

PACKAGE = Path(kernel_compat.__file__).parent


def test_all_names_exist() -> None:
    for name in kernel_compat.__all__:
        assert hasattr(kernel_compat, name), name
    assert sorted(kernel_compat.__all__) == sorted(set(kernel_compat.__all__))


def test_feature_missing_is_a_kernel_fact_error() -> None:
    assert issubclass(kernel_compat.FeatureMissing, kernel_compat.KernelFactError)


def test_imports_only_stdlib_and_itself() -> None:
    # kernel_compat sits below the rest of rawtrace: it must not import the project.
    for source in PACKAGE.rglob("*.py"):
        tree = ast.parse(source.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                modules = [node.module or ""]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                assert top not in ("rawtrace", "bpf_bytecode", "kernel_compat"), source.name


# The layout rule: small packages, small files, and no module named like one elsewhere in the
# project, so a basename in a traceback or a grep says which module it is.
_MAX_MODULES = 12
_MAX_LINES = 450


def _package_dirs() -> list[Path]:
    return [PACKAGE, *(init.parent for init in PACKAGE.rglob("*/__init__.py"))]


def test_every_package_holds_at_most_12_modules() -> None:
    for directory in _package_dirs():
        modules = sorted(p.name for p in directory.glob("*.py"))
        assert len(modules) <= _MAX_MODULES, (directory, modules)


def test_no_module_is_over_450_lines() -> None:
    for source in PACKAGE.rglob("*.py"):
        lines = len(source.read_text().splitlines())
        assert lines <= _MAX_LINES, (source.relative_to(PACKAGE), lines)


def test_no_module_basename_is_shared_with_the_other_packages() -> None:
    others = set()
    for name in ("rawtrace", "bpf_bytecode"):
        for source in (PACKAGE.parent / name).rglob("*.py"):
            others.add(source.stem)
            others.update(p.name for p in source.relative_to(PACKAGE.parent).parents)
    ours = {source.stem for source in PACKAGE.rglob("*.py")} - {"__init__"}
    ours |= {directory.name for directory in _package_dirs()[1:]}
    assert sorted(ours & others) == []
