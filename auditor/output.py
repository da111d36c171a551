"""Files the tool writes: whole or not at all, and a clear error (never a traceback) when a path is unwritable."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from auditor.chain.rpc import ConfigError

# The process's umask, read once (os.umask can only be read by setting it).
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def write_text(path: Path, text: str) -> None:
    """Write atomically: a reader never sees half a file, and a failed write leaves the old one in place."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
                stream.write(text)
            os.chmod(tmp, 0o666 & ~_UMASK)  # what open() would have given: a published site is readable
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None


def json_text(document: Mapping[str, Any]) -> str:
    """The one spelling of every JSON file and answer the tool writes: sorted keys, indented, a final newline."""
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def write_json(path: Path, document: Mapping[str, Any]) -> None:
    write_text(path, json_text(document))
