"""The SDK's type hints resolve at run time (pydantic, typeguard and documentation tools
read them), each module on its own in a fresh interpreter: a hint that named a type its
module never imported failed there with ``NameError``, depending on import order."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SDK_ROOT = Path(__file__).resolve().parents[1]

MODULES = ["checkpoint", "cluster", "dataset", "direct_io", "hanami_request", "hanami_token",
           "hosts", "logs", "project", "request_result", "task", "user"]

CHECK = """
import inspect, sys, typing
module = __import__("hanami_sdk." + sys.argv[1], fromlist=["_"])
functions = [f for name, f in inspect.getmembers(module, inspect.isfunction)
             if f.__module__ == module.__name__ and not name.startswith("_")]
assert functions, "no public functions"
for function in functions:
    typing.get_type_hints(function)
print(len(functions))
"""


@pytest.mark.parametrize("module", MODULES)
def test_type_hints_resolve_in_a_fresh_interpreter(module: str) -> None:
    done = subprocess.run([sys.executable, "-c", CHECK, module], cwd=SDK_ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 0
