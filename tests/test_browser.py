"""A real browser (Debian's headless Chromium) renders the demo report and a hostile one."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise
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


ROOT = Path(__file__).resolve().parent.parent
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
REPORT = "stream-xusd-reconstruction.html"
WIDTHS = (1400, 390)
# Budgets of the issue "A report a curator reads in two minutes".
MAX_REPORT_BYTES = 250_000
MAX_PRINTED_PAGES = 12
SECTIONS = ["Verdict", "Key figures", "History", "Why: the flags", "The money", "Who is exposed", "Method and evidence",
            "Signature"]

# In the page: every element whose content is wider than its box and is not inside a horizontal scroller, and
# every flag name laid out on more than one line (a name broken mid-word).
OVERFLOWS = """() => {
  const scrolls = (el) => el.closest('.scroll') !== null;
  const bad = [];
  for (const el of document.querySelectorAll('body *')) {
    if (scrolls(el) || el.closest('svg') || el.closest('details:not([open]) > :not(summary)')) continue;
    const style = getComputedStyle(el);
    if (style.display === 'inline' || style.display === 'none') continue;
    if (el.scrollWidth > el.clientWidth + 1 && style.overflowX !== 'auto') {
      bad.push(el.tagName + '.' + el.className + ': ' + el.textContent.slice(0, 60));
    }
  }
  for (const el of document.querySelectorAll('code.flag, strong.flag')) {
    const range = document.createRange();
    range.selectNodeContents(el);
    const lines = new Set([...range.getClientRects()].map((r) => Math.round(r.top)));
    if (lines.size > 1) bad.push('flag broken over lines: ' + el.textContent);
  }
  if (document.documentElement.scrollWidth > window.innerWidth + 1) bad.push('the page scrolls sideways');
  return bad;
}"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield launched
        launched.close()


def open_page(browser: Any, path: Path, width: int, *, bypass_csp: bool = False) -> Any:
    context = browser.new_context(viewport={"width": width, "height": 900}, bypass_csp=bypass_csp)
    page = context.new_page()
    page.goto(path.as_uri())
    return page


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", [REPORT, "index.html"])
def test_pages_fit_their_boxes_at_desktop_and_phone_widths(demo_site: Path, browser: Any, name: str,
                                                           width: int) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page = open_page(browser, demo_site / name, width)
    page.screenshot(path=str(ARTIFACTS / f"{Path(name).stem}-{width}.png"), full_page=True)
    assert page.evaluate(OVERFLOWS) == []
    page.context.close()


def test_the_overflow_check_itself_finds_overflow(tmp_path: Path, browser: Any) -> None:
    """Control: a card too narrow for its text and a flag name broken mid-word are both found."""
    sheet = "div{width:40px;overflow:hidden;white-space:nowrap} p{width:60px;word-break:break-all}"
    control = tmp_path / "control.html"
    control.write_text(f"<html><head><style>{sheet}</style></head><body><div>a-very-long-flag-name</div>"
                       "<p><code class='flag'>self-issued-collateral</code></p></body></html>")
    found = open_page(browser, control, 390).evaluate(OVERFLOWS)
    assert any(entry.startswith("DIV") for entry in found)
    assert any("flag broken over lines" in entry for entry in found)


def test_demo_report_reads_in_order_within_budgets(demo_site: Path, browser: Any) -> None:
    report = demo_site / REPORT
    assert report.stat().st_size <= MAX_REPORT_BYTES
    page = open_page(browser, report, 1400)
    headings = page.evaluate("() => [...document.querySelectorAll('h1,h2,h3,h4')].map("
                             "h => [Number(h.tagName[1]), h.textContent.trim()])")
    assert headings[0][0] == 1
    assert [text for level, text in headings if level == 2] == SECTIONS
    for (before, _), (after, text) in pairwise(headings):
        assert after <= before + 1, f"heading level jumps to h{after} at {text!r}"
    text = page.inner_text("main")
    assert "xUSD is not backed: $0 of verifiable backing for $19.1M of supply" in text
    assert "at every pin audited (28 Oct 2025 to 5 Nov 2025)" in text
    assert "deUSD is not backed" in text and "since 3 Nov 2025 (backed on 28 Oct 2025)" in text
    # Raw chain values only inside evidence, which is collapsed.
    visible = page.evaluate("() => document.body.innerText")
    for raw in ("915000000000000000", "lltv_raw", "oracle_price_raw", "supplied_usd", "look_through_loss_usd"):
        assert raw not in visible, raw
    pdf = page.pdf(format="A4", print_background=True)
    pages = len(re.findall(rb"/Type\s*/Page[^s]", pdf))
    assert 1 <= pages <= MAX_PRINTED_PAGES, pages
    page.context.close()


@pytest.mark.skipif(not AXE.exists(), reason="axe-core is not installed (npm ci installs it)")
@pytest.mark.parametrize("name", [REPORT, "index.html"])
def test_no_serious_accessibility_violations(demo_site: Path, browser: Any, name: str) -> None:
    # axe-core is evaluated through the DevTools protocol; the page's own policy still allows no script.
    page = open_page(browser, demo_site / name, 1400, bypass_csp=True)
    page.evaluate(AXE.read_text(encoding="utf-8"))
    result = page.evaluate("() => axe.run(document, {runOnly: {type: 'tag', values: "
                           "['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})")
    serious = [(v["id"], v["impact"], [n["target"] for n in v["nodes"][:3]]) for v in result["violations"]
               if v["impact"] in ("serious", "critical")]
    assert serious == []
    assert any(rule["id"] == "color-contrast" for rule in result["passes"])  # contrast was checked
    page.context.close()


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
