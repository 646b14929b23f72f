"""One source for each docstring: the Rust doc comments give ``help()`` its text, and the
hand-written stub (``_godottpd.pyi``, what editors and type checkers show) must say the same.

Each class and member documented in the stub is compared with its runtime ``__doc__``
(PyO3 puts the ``text_signature`` line first; ``inspect.getdoc`` drops it).
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import godottpd._godottpd as core
import pytest

STUB = Path(core.__file__).with_name("_godottpd.pyi")


def stub_docstrings() -> list[tuple[str, str | None, str]]:
    tree = ast.parse(STUB.read_text())
    found: list[tuple[str, str | None, str]] = []
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        doc = ast.get_docstring(node)
        if doc:
            found.append((node.name, None, doc))
        for item in node.body:
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(item)
                if doc and not any(
                    isinstance(d, ast.Attribute) and d.attr == "setter" for d in item.decorator_list
                ):
                    found.append((node.name, item.name, doc))
    return found


def runtime_doc(cls: str, member: str | None) -> str:
    target = getattr(core, cls)
    if member is not None:
        target = inspect.getattr_static(target, member)
    doc = target.__doc__ or ""
    if doc.startswith(("(", f"{member}(")) and "\n--\n\n" in doc:
        doc = doc.split("\n--\n\n", 1)[1]
    return inspect.cleandoc(doc)


@pytest.mark.parametrize(
    ("cls", "member", "doc"),
    [pytest.param(c, m, d, id=f"{c}.{m}" if m else c) for c, m, d in stub_docstrings()],
)
def test_help_and_stub_agree(cls: str, member: str | None, doc: str) -> None:
    assert runtime_doc(cls, member) == doc
