"""A real browser (Debian's headless Chromium) renders the demo report and a hostile one."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from auditor.demo import run_demo
from auditor.report.publish import write_report
from tests.test_render import _document

CHROMIUM = shutil.which("chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make test installs it)")


def chromium(url: str, *extra: str) -> str:
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
             "--window-size=1200,2000", *extra, url],
            capture_output=True, text=True, timeout=120, check=True,
        )
    return result.stdout


def visible_text(dom: str) -> str:
    body = re.sub(r"<script\b.*?</script>|<style\b.*?</style>", " ", dom, flags=re.DOTALL)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body))


@pytest.fixture(scope="module")
def demo_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("site")
    run_demo(folder, lambda _line: None, signing=(bytes(range(1, 33)), "a test key"))
    return folder


def test_demo_report_and_index_render_in_a_browser(demo_site: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    report = demo_site / "stream-xusd-reconstruction.html"
    chromium(report.as_uri(), f"--screenshot={ARTIFACTS / 'demo-report.png'}")
    assert (ARTIFACTS / "demo-report.png").stat().st_size > 10_000
    text = visible_text(chromium(report.as_uri(), "--dump-dom"))
    assert "xUSD: 14.5M supply, 1.9M verifiable backing, 7.6x expansion" in text
    assert "unbounded expansion" in text and "oracle-overvalues" in text
    assert "Who lends against xUSD" in text and "Yield: claimed against what the chain explains" in text
    index = demo_site / "index.html"
    chromium(index.as_uri(), f"--screenshot={ARTIFACTS / 'index.png'}")
    assert "stream-xusd-reconstruction" in visible_text(chromium(index.as_uri(), "--dump-dom"))


class _Counter(BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        _Counter.hits.append(self.path)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return


@pytest.fixture
def listener() -> Iterator[tuple[str, list[str]]]:
    _Counter.hits = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Counter)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Counter.hits
    server.shutdown()
    server.server_close()


def test_hostile_report_runs_no_script_and_sends_no_request(tmp_path: Path,
                                                            listener: tuple[str, list[str]]) -> None:
    base, hits = listener
    symbol = f"<script>document.title='pwned';fetch('{base}/script')</script><img src=\"{base}/img\">"
    label = f"\"><img src=x onerror=\"document.title='pwned'\"><link rel=stylesheet href=\"{base}/css\">"
    report = tmp_path / "hostile.html"
    write_report(_document(symbol=symbol, label=label), report, key=bytes(range(1, 33)))
    dom = chromium(report.as_uri(), "--dump-dom", "--virtual-time-budget=2000")
    title = re.search(r"<title>(.*?)</title>", dom, flags=re.DOTALL)
    assert title is not None and "pwned" not in title.group(1)
    assert hits == [], f"the page made requests: {hits}"
    assert "&lt;script&gt;document.title" in dom  # shown as text, not run


def test_the_request_detector_itself_works(tmp_path: Path, listener: tuple[str, list[str]]) -> None:
    """Control: an unescaped page does reach the listener and does run script, so the test above can fail."""
    base, hits = listener
    page = tmp_path / "control.html"
    page.write_text(f"<html><head><title>t</title></head><body><img src=\"{base}/control\">"
                    "<script>document.title='pwned'</script></body></html>")
    dom = chromium(page.as_uri(), "--dump-dom", "--virtual-time-budget=2000")
    assert "/control" in hits
    assert "<title>pwned</title>" in dom
