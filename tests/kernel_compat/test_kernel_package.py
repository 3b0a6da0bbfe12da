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
    for source in PACKAGE.glob("*.py"):
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
