"""Only what pyproject.toml cannot say: the cffi-built ring drain (an abi3 extension)."""

from setuptools import setup

setup(
    # optional (set_source(optional=True) there): where it fails to compile, setuptools warns
    # and builds on without it, and rawtrace runs its Python drains
    cffi_modules=["rawtrace/transports/_drain_build.py:ffibuilder"],
    # one wheel for every CPython >= 3.9: the extension uses only the stable ABI
    options={"bdist_wheel": {"py_limited_api": "cp39"}},
)
