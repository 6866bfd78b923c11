"""nginx time values (``10``, ``30s``, ``1m 30s``, ``500ms``): see :func:`parse_duration`.

The parser lives with the server parameters that use it (:mod:`lbkit.upstream`); this
module gives it its nginx name.
"""

from lbkit.upstream import parse_duration

__all__ = ["parse_duration"]
