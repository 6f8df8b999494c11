"""The TOML files beside the settings (alerts, reports, routing policy, price overrides), read
through typed pydantic models: a wrong type or an unknown key stops start-up with the file, the
key and the reason, instead of `"false"` turning into True or a bare `invalid literal for int()`.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

M = TypeVar("M", bound=BaseModel)


class FileModel(BaseModel):
    """A table of a config file: its keys are known, their values typed."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ConfigFileError(ValueError):
    """A config file that does not fit its model; the message names the file, each key and why."""


def checked(model: type[M], data: Any, source: str) -> dict[str, Any]:
    """`data` validated by `model`, as plain values (converted, keys as written, absent stay absent)."""
    return validated(model, data, source).model_dump(by_alias=True, exclude_unset=True)


def validated(model: type[M], data: Any, source: str) -> M:
    """`data` validated by `model`, as the model; ConfigFileError naming each bad key and why."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(part) for part in error['loc']) or '(top level)'}: {error['msg']}"
            for error in exc.errors(include_url=False)
        ]
        raise ConfigFileError(f"{source}: " + "; ".join(problems)) from None
