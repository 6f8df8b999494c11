"""Optional dependencies, imported when first needed, with a message that names the extra.

botocore (Bedrock) and google-auth (Vertex) are large; a gateway that serves neither cloud
does not install or import them.
"""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingExtra(Exception):
    """A feature was used whose optional dependency is not installed."""


def require(module: str, extra: str, feature: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(
            f"{feature} needs the optional dependency {module.split('.')[0]!r}: "
            f"pip install 'spendgate[{extra}]'"
        ) from None
