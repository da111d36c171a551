"""Local EVM lab: anvil nodes, solc-js compiles and real protocol deployments for tests and demos."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["LabError", "node_modules_dir", "project_root"]


class LabError(RuntimeError):
    """A lab set-up step failed; the message names the step and how to fix it."""


def project_root() -> Path:
    """Return the directory holding the project's package.json (where `npm ci` puts node_modules)."""
    override = os.environ.get("AUDITOR_PROJECT_ROOT")
    if override:
        root = Path(override).expanduser().resolve()
        if not (root / "package.json").is_file():
            raise LabError(
                f"finding the project root: AUDITOR_PROJECT_ROOT={override} has no package.json; "
                "point it at the reserve-auditor checkout"
            )
        return root
    # An installed (non-editable) package lives in site-packages, far from package.json, so the
    # working directory is the second place to look.
    for start in (Path(__file__).resolve().parent, Path.cwd().resolve()):
        for candidate in (start, *start.parents):
            if (candidate / "package.json").is_file():
                return candidate
    raise LabError(
        "finding the project root: no package.json above "
        f"{Path(__file__).resolve().parent} or {Path.cwd()}; run from the reserve-auditor checkout "
        "or set AUDITOR_PROJECT_ROOT"
    )


def node_modules_dir() -> Path:
    """Return <project root>/node_modules, failing with a fix if `npm ci` has not run."""
    path = project_root() / "node_modules"
    if not path.is_dir():
        raise LabError(f"finding node_modules: {path} does not exist; run `npm ci` in {path.parent}")
    return path
