"""Configuration helpers shared by collect, serve and study: YAML reading, error messages, keys from the environment.

A configuration names the environment variable that holds an API key, never the key itself. A key pasted
where a variable name belongs must not end up in an error message, so a name is only ever shown when it
looks like a conventional variable name (upper case, digits and underscores, no random-looking part).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ConfigDict, ValidationError

STRICT = ConfigDict(extra="forbid", hide_input_in_errors=True)
"""Unknown fields are errors, and no error message repeats the value it rejects (it could be a key)."""

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CONVENTIONAL_NAME = re.compile(r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*$")
_LONGEST_SHOWN_NAME = 48
_RANDOM_LOOKING_PART = 12  # a part of a name this long that mixes letters and digits reads like a key


class ConfigError(ValueError):
    """A configuration file or setting is invalid; the message names the file and the field."""


def read_yaml(path: Path) -> Any:
    """The document in a YAML file; ConfigError when the file is missing or not YAML."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: configuration file not found")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None


def validation_message(path: Path, exc: ValidationError) -> str:
    """One line per problem of a pydantic validation, each naming its field."""
    lines = [_describe(error) for error in exc.errors(include_input=False, include_url=False)]
    return f"{path}: {len(lines)} problem(s):\n" + "\n".join(f"  {line}" for line in lines)


def _describe(error: Any) -> str:
    location = ""
    for part in error["loc"]:
        location += f"[{part}]" if isinstance(part, int) else (f".{part}" if location else str(part))
    return f"{location or '(top level)'}: {error['msg']}"


def check_variable_name(value: str | None) -> str | None:
    """A pydantic validator for fields holding the NAME of an environment variable."""
    if value is not None and not _ENV_NAME.match(value):
        raise ValueError("must be the NAME of an environment variable (letters, digits, _), not the key itself")
    return value


def shows_as_variable_name(name: str) -> bool:
    """Whether ``name`` may be printed: a conventional variable name, not something that could be a key."""
    if len(name) > _LONGEST_SHOWN_NAME or not _CONVENTIONAL_NAME.match(name):
        return False
    return not any(
        len(part) >= _RANDOM_LOOKING_PART and any(c.isdigit() for c in part) and any(c.isalpha() for c in part)
        for part in name.split("_")
    )


def variable_reference(name: str, owner: str) -> str:
    """How an error message refers to the variable named in ``owner``: by name only when that is safe."""
    if shows_as_variable_name(name):
        return f"environment variable {name} ({owner})"
    return f"the environment variable named in {owner} (name not shown: it does not look like a variable name)"


def _unset_message(name: str, owner: str) -> str:
    message = f"{variable_reference(name, owner)} is not set"
    if not shows_as_variable_name(name):
        message += (
            f"; if {owner} holds the key itself, put the key in an environment variable "
            f"(e.g. export MY_API_KEY=...) and write that variable's NAME in {owner}"
        )
    return message


def key_from_environment(variable: str | None, owner: str) -> str | None:
    """The API key held in environment ``variable`` (None when no variable is named); ConfigError names ``owner``."""
    if variable is None:
        return None
    key = os.environ.get(variable, "")
    if not key:
        raise ConfigError(_unset_message(variable, owner))
    return key


def keys_from_environment(variable: str, owner: str) -> tuple[str, ...]:
    """The comma-separated keys held in environment ``variable``; ConfigError when there are none."""
    keys = tuple(key.strip() for key in os.environ.get(variable, "").split(",") if key.strip())
    if not keys:
        raise ConfigError(_unset_message(variable, owner) + " or holds no key")
    return keys
