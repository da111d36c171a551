"""The compiled reader of log replies (auditor/chain/_logwire.c), where setup.py could build it, else None.

Every caller keeps a Python path that gives the same values and is the oracle of tests/test_logwire.py; callers
read `LOGWIRE` when they run, so tests switch it. AUDITOR_PURE_PYTHON=1 in the environment turns it off."""

from __future__ import annotations

import os
from types import ModuleType

BUILT: ModuleType | None
try:
    from auditor.chain import _logwire as BUILT
except ImportError:  # pragma: no cover - depends on the machine that installed the package
    BUILT = None

LOGWIRE = None if os.environ.get("AUDITOR_PURE_PYTHON") == "1" else BUILT
