"""nginx-style variable templates: ``host_$3``, ``${name}.internal``, ``$host``."""

from __future__ import annotations

import re
from collections.abc import Mapping

from lbkit.errors import ConfigError

__all__ = ["expand", "variables_in"]

_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([1-9])|([A-Za-z_][A-Za-z0-9_]*))")


def variables_in(template: str) -> list[str]:
    """The variable names a template uses, in order (``"1"`` for ``$1``)."""
    return [m.group(1) or m.group(2) or m.group(3) for m in _VAR.finditer(template)]


def expand(template: str, variables: Mapping[str, str], *, strict: bool = True) -> str:
    """Replace ``$1``..``$9``, ``$name`` and ``${name}`` with their values.

    ``$1`` is one digit, as in nginx (``$10`` is ``$1`` followed by ``0``). A capture that
    did not participate is empty. With ``strict``, a name absent from ``variables`` raises
    :class:`~lbkit.ConfigError`; otherwise it expands to the empty string, as nginx does for
    an unset variable.
    """

    def sub(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        if name in variables:
            return variables[name]
        if name.isdigit():
            return ""
        if strict:
            known = ", ".join(sorted(f"${k}" for k in variables))
            raise ConfigError(f"unknown variable ${name} in {template!r} (known: {known})")
        return ""

    return _VAR.sub(sub, template)
