"""The user's config file: ~/.config/playground/config.toml (or $PLAYGROUND_CONFIG).

[user]
tagger = "ada"            # name stored with your tags (default: the OS user)

[keys]                    # rebind any key; ids are listed on the help screen (F1)
"lane.mode" = "f6"
"app.cancel" = "ctrl+c"
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from playground.core.errors import PlaygroundError


class ConfigError(PlaygroundError):
    pass


def config_path() -> Path:
    if env := os.environ.get("PLAYGROUND_CONFIG"):
        return Path(env)
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "playground" / "config.toml"


@dataclass
class Config:
    tagger: str | None = None
    keys: dict[str, str] = field(default_factory=dict)
    path: Path | None = None

    @classmethod
    def load(cls, path: Path | None = None) -> Config:
        path = path or config_path()
        if not path.exists():
            return cls(path=path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path}: {e}") from e
        except OSError as e:
            raise ConfigError(f"cannot read {path}: {e.strerror}") from e
        user = data.get("user", {})
        keys = data.get("keys", {})
        if not isinstance(user, dict) or not isinstance(keys, dict):
            raise ConfigError(f"{path}: [user] and [keys] must be tables")
        bad = [k for k, v in keys.items() if not isinstance(v, str) or not v.strip()]
        if bad:
            raise ConfigError(
                f'{path}: [keys] values must be key names such as "ctrl+t" (see {", ".join(bad)})'
            )
        tagger = user.get("tagger")
        if tagger is not None and not isinstance(tagger, str):
            raise ConfigError(f"{path}: user.tagger must be a string")
        return cls(tagger=tagger, keys=dict(keys), path=path)
