"""A wheel of the project renders, signs and verifies a report with no source tree in sight (issue 13, item 4).

The templates are package data: this builds a wheel from a copy of the tree, installs it into a fresh
venv, and runs the installed code from a temporary directory. The project's dependencies come from the
development venv's site-packages through a plain path entry, so the editable install's path hook there
(its __editable__ .pth and finder) is never run and the checkout is never importable.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Not part of a build: environments, caches, outputs, and the JavaScript toolchain.
SKIP_DIRS = {".git", ".venv", ".venv-bench", "node_modules", "build", "dist", "reports", "test-artifacts",
             "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis", ".cache"}
TEST_KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")  # a fixed test key
BUDGET_SECONDS = 60

RENDER = """
import json, sys
from pathlib import Path
import auditor
from auditor.report import render
from auditor.report.publish import write_report

document = {"report": "wheel check", "spec": "wheel", "token": "WHL",
            "issuers": {"wheel": {"symbol": "WHL", "positions": [], "supply": {"tokens": "1"}}}}
signature = write_report(document, Path("report.html"), bytes.fromhex(sys.argv[1]))
print(json.dumps({"auditor": auditor.__file__, "templates": str(render.TEMPLATES_DIR),
                  "signer": signature.signer, "path": sys.path, "meta_path": [repr(f) for f in sys.meta_path]}))
"""


def _run(args: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=BUDGET_SECONDS, check=False)


def _can_build_without_isolation() -> str | None:
    """None when this venv has a setuptools that can build a wheel by itself, or why it cannot."""
    try:
        version = tuple(int(part) for part in metadata.version("setuptools").split(".")[:2])
    except metadata.PackageNotFoundError:
        return "setuptools is not installed in the test venv"
    if version < (68, 0):
        return f"setuptools {metadata.version('setuptools')} is older than pyproject's build requirement (>=68)"
    if version < (70, 1):  # bdist_wheel moved into setuptools in 70.1; before that it needs `wheel`
        try:
            metadata.version("wheel")
        except metadata.PackageNotFoundError:
            return f"setuptools {metadata.version('setuptools')} needs the `wheel` package, which is not installed"
    return None


def _build_wheel(tmp: Path) -> Path:
    """A wheel from a copy of the tree: building in place would write build/ and *.egg-info into a shared checkout."""
    source, out = tmp / "source", tmp / "dist"
    shutil.copytree(ROOT, source, ignore=lambda _, names: [n for n in names
                                                             if n in SKIP_DIRS or n.endswith((".egg-info", ".pyc"))])
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "-w", str(out)]
    why_isolated = _can_build_without_isolation()
    # Without isolation the build is offline and quick; otherwise pip fetches the build backend from the index.
    command += ["--no-build-isolation"] if why_isolated is None else []
    built = _run([*command, str(source)], cwd=tmp)
    wheels = sorted(out.glob("reserve_auditor-*.whl"))
    if built.returncode != 0 or len(wheels) != 1:
        mode = "without build isolation" if why_isolated is None else f"with build isolation ({why_isolated})"
        pytest.fail(f"cannot build a wheel {mode}: exit {built.returncode}\n{built.stdout[-3000:]}\n"
                    f"{built.stderr[-3000:]}")
    return wheels[0]


def _fresh_venv(tmp: Path, wheel: Path) -> Path:
    """A venv holding only the wheel; the dependencies are importable from the development venv."""
    venv = tmp / "venv"
    made = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    installed = _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
                      "--disable-pip-version-check", str(wheel)], cwd=tmp)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                     cwd=tmp).stdout.strip())
    # A bare directory line: a .pth inside that directory (the editable install's) is not processed.
    dependencies = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (site / "zz_reserve_auditor_test_deps.pth").write_text("\n".join(sorted(dependencies)) + "\n", encoding="utf-8")
    return venv


def test_an_installed_wheel_renders_signs_and_verifies_a_report(tmp_path: Path) -> None:
    started = time.monotonic()
    venv = _fresh_venv(tmp_path, _build_wheel(tmp_path))
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env |= {"PYTHONNOUSERSITE": "1", "PYTHONSAFEPATH": "1", "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"}

    rendered = _run([str(venv / "bin" / "python"), "-c", RENDER, TEST_KEY.hex()], cwd=work, env=env)
    assert rendered.returncode == 0, rendered.stdout + rendered.stderr
    seen = json.loads(rendered.stdout)
    prefix = str(venv.resolve())
    assert seen["auditor"].startswith(prefix), f"auditor imported from {seen['auditor']}, not the fresh venv"
    assert seen["templates"].startswith(prefix), seen["templates"]
    # Only the fresh venv holds the package: not the checkout (cwd, PYTHONPATH, an editable path entry)...
    elsewhere = [p for p in seen["path"] if (Path(p or ".") / "auditor").exists() and not p.startswith(prefix)]
    assert not elsewhere, f"another copy of auditor is on the path: {elsewhere}"
    # ...and no editable finder that would map `auditor` to it.
    assert not [f for f in seen["meta_path"] if "__editable__" in f or str(ROOT / "auditor") in f], seen["meta_path"]
    page = (work / "report.html").read_text(encoding="utf-8")
    assert "<style>" in page and "wheel check" in page and "UNSIGNED" not in page

    verified = _run([str(venv / "bin" / "auditor"), "verify", "report.html", "--signer", seen["signer"]],
                    cwd=work, env=env)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "report.html verifies" in verified.stdout
    elapsed = time.monotonic() - started
    assert elapsed < BUDGET_SECONDS, f"the wheel check took {elapsed:.1f}s"
