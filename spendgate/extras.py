"""Optional features and the pip extra that installs each.

The core install (`pip install spendgate`) holds what the gateway and its CLI need. Reports,
Parquet export and the demo need libraries of several hundred MB between them (matplotlib with
numpy, reportlab, pyarrow, the provider SDKs), so they are extras, imported only by the feature
that uses them. A feature asks `require` first: a missing extra then becomes one clear sentence
naming the `pip install` that fixes it, never an ImportError from deep inside a report.
"""

from __future__ import annotations

import importlib.util

# extra -> the top-level modules it installs (the import names, not the distribution names)
EXTRAS: dict[str, tuple[str, ...]] = {
    "reports": ("matplotlib", "reportlab", "jinja2"),
    "parquet": ("pyarrow",),
    "demo": ("anthropic", "openai"),
    "bedrock": ("botocore",),
    "vertex": ("google.auth",),
    "console": ("jinja2", "authlib"),
}


class MissingExtra(RuntimeError):
    """A feature was used whose extra is not installed."""

    def __init__(self, extra: str, feature: str, module: str) -> None:
        super().__init__(
            f"{feature} needs the '{extra}' extra, which is not installed (no module {module!r}): "
            f"pip install 'spendgate[{extra}]'"
        )
        self.extra = extra
        self.module = module


def missing(extra: str) -> str | None:
    """The first module of `extra` that cannot be imported, or None. Looks, does not import."""
    for module in EXTRAS[extra]:
        if importlib.util.find_spec(module) is None:
            return module
    return None


def require(extra: str, feature: str) -> None:
    """Raise MissingExtra, naming `feature` and the extra, unless `extra` is installed."""
    module = missing(extra)
    if module is not None:
        raise MissingExtra(extra, feature, module)
