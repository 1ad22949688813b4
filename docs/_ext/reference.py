"""Griffe extension for the API reference: what the site shows of aioqueue's source, nothing more.

- Sphinx roles. The docstrings are prose with ``literals`` and a few roles such as :class:`MessageBatch`
  or :meth:`receive`. Markdown has no roles, so each becomes a link to the object's entry in the
  reference (``aioqueue.MessageBatch``, ``aioqueue.QueueClient.receive``) when the reference documents
  that object, and plain code otherwise.
- Private parameters. A parameter whose name starts with ``_`` (``QueueClient(..., _pool=...)``, used
  between the package's own modules) is left out of the signatures shown.

The source is left alone: only what the site renders changes.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from typing import Any

import griffe

# the modules whose ``__all__`` the reference documents (docs/reference/*.md)
DOCUMENTED = ("aioqueue", "aioqueue.testing")
ROLE = re.compile(r":(class|meth|func|attr|mod|exc|data|obj):`~?\.?([^`]+)`")
CALLABLE = {"meth", "func"}


class ReferenceExtension(griffe.Extension):
    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        if pkg.name != "aioqueue":
            return
        roles = _Roles(pkg)
        for obj in _walk(pkg):
            if obj.docstring is not None and ":`" in obj.docstring.value:
                obj.docstring.value = ROLE.sub(functools.partial(roles.render, obj=obj), obj.docstring.value)
            if obj.is_function:
                for name in [p.name for p in obj.parameters if p.name.startswith("_")]:  # type: ignore[attr-defined]
                    del obj.parameters[name]  # type: ignore[attr-defined]


class _Roles:
    def __init__(self, pkg: griffe.Module) -> None:
        # canonical path -> documented path (aioqueue._client.QueueClient -> aioqueue.QueueClient)
        self.documented: dict[str, str] = {}
        # documented module -> exported name -> the object
        self.exports: dict[str, dict[str, griffe.Object]] = {}
        for module_path in DOCUMENTED:
            module = pkg.modules_collection[module_path] if module_path != pkg.path else pkg
            names = self.exports.setdefault(module_path, {})
            for name in module.exports or ():
                member = module.members.get(name)
                if member is None or name.startswith("_"):
                    continue
                target = member.final_target if member.is_alias else member
                self.documented.setdefault(target.path, f"{module_path}.{name}")
                names[name] = target  # type: ignore[assignment]

    def render(self, match: re.Match[str], obj: griffe.Object) -> str:
        role, target = match.groups()
        text = target.rsplit(".", 1)[-1] + ("()" if role in CALLABLE else "")
        identifier = self.resolve(target, obj)
        return f"[`{text}`][{identifier}]" if identifier else f"`{text}`"

    def resolve(self, target: str, obj: griffe.Object) -> str | None:
        # a member of the docstring's class, or of the class its method or attribute belongs to
        cls = obj if obj.is_class else obj.parent
        if cls is not None and cls.is_class and cls.path in self.documented and _has_public_member(cls, target):
            return f"{self.documented[cls.path]}.{target}"
        # a name its own module exports (aioqueue.testing), else one aioqueue exports, or one of its members
        head, _, rest = target.partition(".")
        for module_path in sorted(self.exports, key=lambda path: path != obj.module.path):
            exported = self.exports[module_path]
            if head in exported and (not rest or _has_public_member(exported[head], rest)):
                return f"{module_path}.{target}"
        return None


def _walk(obj: griffe.Object) -> Iterator[griffe.Object]:
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _walk(member)  # type: ignore[arg-type]


def _has_public_member(obj: griffe.Object, name: str) -> bool:
    return "." not in name and not name.startswith("_") and name in obj.members
