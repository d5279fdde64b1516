"""Load every page of the built book in headless Chromium, network off, and fail on what a reader would see broken.

Checks per page: no horizontal overflow (of the page, or of a figure beyond the text column), every plotly figure and
image rendered, no console error or uncaught exception, no MathJax error, and every static slider (plotly sliders)
changes its figure when moved to another step. Also the page weight: HTML over ``--max-mb`` fails.

Talks to Chromium over the DevTools protocol on a pipe (--remote-debugging-pipe), so it needs nothing beyond the
standard library and a Chromium binary (scripts/install_browser.sh installs Debian's). The network is cut with
``unshare -n`` where the system allows it, and in any case every request that leaves file:// is blocked.

usage: python scripts/browser_check.py [_build/html] [--pages book/preface.html ...] [--width 1280] [--max-mb 1.5]
Exit status 0 when every page passes, 1 when one fails, 2 when no Chromium is found (one line says so).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
NO_BROWSER = "browser check: not run, no Chromium found (install it with: bash scripts/install_browser.sh)"

# Runs in the page after load: what a reader would find broken. Returns a JSON-able dict.
INSPECT = r"""
(async () => {
  const sleep = ms => new Promise(r => setTimeout(r, ms));
  for (let i = 0; i < 100 && (!window.MathJax || !MathJax.startup || !MathJax.startup.promise); i++) await sleep(50);
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { try { await MathJax.startup.promise; } catch (e) {} }
  await sleep(300);
  const out = {problems: [], figures: 0, sliders: 0, moved: 0};
  const doc = document.scrollingElement || document.documentElement;
  if (doc.scrollWidth > doc.clientWidth + 2)
    out.problems.push(`page overflows horizontally: ${doc.scrollWidth} px content in a ${doc.clientWidth} px window`);
  const article = document.querySelector('main article, article.bd-article, .bd-article') || document.body;
  const right = article.getBoundingClientRect().right;
  const label = el => (el.id || el.className || el.tagName).toString().slice(0, 60);
  for (const el of article.querySelectorAll('.plotly-graph-div, img, .cell_output svg')) {
    const box = el.getBoundingClientRect();
    if (box.width > 0 && box.right > right + 4) {
      // Inside a scrolling container (wide tables, code) is fine; a figure that pokes out of the column is not.
      let p = el.parentElement, scrolls = false;
      while (p && p !== article) { const s = getComputedStyle(p).overflowX; if (s === 'auto' || s === 'scroll') { scrolls = true; break; } p = p.parentElement; }
      if (!scrolls) out.problems.push(`${el.tagName.toLowerCase()} ${label(el)} overflows the column by ${Math.round(box.right - right)} px`);
    }
  }
  for (const img of article.querySelectorAll('img')) {
    if (!img.complete || img.naturalWidth === 0) out.problems.push(`image does not load: ${img.getAttribute('src')}`);
  }
  for (const err of document.querySelectorAll('mjx-merror, .MathJax_Error')) out.problems.push(`MathJax error: ${err.textContent.slice(0, 80)}`);
  // Maths left as TeX source: MathJax did not run, or failed before typesetting.
  const walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT);
  let raw = 0, sample = '';
  while (walker.nextNode()) {
    const node = walker.currentNode, parent = node.parentElement;
    if (parent.closest('pre, code, script, style, .highlight, mjx-container')) continue;
    if (/\\\(|\\\[/.test(node.textContent)) { raw += 1; if (!sample) sample = node.textContent.trim().slice(0, 60); }
  }
  if (raw) out.problems.push(`maths not typeset in ${raw} place(s), e.g. "${sample}"`);
  for (const pre of article.querySelectorAll('.cell_output pre')) {
    if (/^<(Figure|matplotlib\.figure\.Figure) size /.test(pre.textContent.trim()))
      out.problems.push(`a figure did not render: "${pre.textContent.trim().slice(0, 60)}"`);
  }
  const plots = [...document.querySelectorAll('.plotly-graph-div')];
  for (const gd of plots) {
    out.figures += 1;
    const svg = gd.querySelector('.main-svg');
    if (!svg || !gd._fullLayout || svg.getBoundingClientRect().height < 20) { out.problems.push(`plotly figure ${gd.id} did not render`); continue; }
    const sliders = (gd.layout && gd.layout.sliders) || [];
    for (const slider of sliders) {
      out.sliders += 1;
      const steps = slider.steps || [];
      if (steps.length < 2) { out.problems.push(`slider of ${gd.id} has ${steps.length} step(s)`); continue; }
      const snap = () => [...gd.querySelectorAll('.main-svg')].map(s => s.innerHTML).join('|');
      const before = snap();
      const target = steps[steps.length - 1 === (slider.active || 0) ? 0 : steps.length - 1];
      try {
        await Plotly[target.method](gd, ...(target.args || []));
      } catch (e) { out.problems.push(`moving the slider of ${gd.id} failed: ${e}`); continue; }
      await sleep(200);
      if (snap() === before) out.problems.push(`moving the slider of ${gd.id} to "${target.label}" does not change the figure`);
      else out.moved += 1;
    }
  }
  return out;
})()
"""


class DevTools:
    """A minimal Chrome DevTools protocol client over --remote-debugging-pipe (fd 3 in, fd 4 out, NUL-framed JSON)."""

    def __init__(self, command: list[str]) -> None:
        to_browser_r, self._write = os.pipe()
        self._read, from_browser_w = os.pipe()

        def child() -> None:
            # Fresh copies first, so that neither dup2 overwrites the other pipe end; fds 3 and 4 are kept open.
            inbound, outbound = os.dup(to_browser_r), os.dup(from_browser_w)
            os.dup2(inbound, 3)
            os.dup2(outbound, 4)

        self.proc = subprocess.Popen(
            command,
            pass_fds=(3, 4),
            preexec_fn=child,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next = 0
        self.events: list[dict] = []

    def _message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._read, 1 << 16)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def call(
        self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 60
    ) -> dict:
        self._next += 1
        message = {"id": self._next, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._message(deadline)
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, session: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method and e.get("sessionId") == session for e in self.events):
            self.events.append(self._message(deadline))

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=5)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def find_browser() -> str | None:
    """The first Chromium-family binary on PATH (or $CHROMIUM), None if there is none."""
    if os.environ.get("CHROMIUM"):
        return os.environ["CHROMIUM"]
    return next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)


def network_off_prefix() -> list[str]:
    """["unshare", "-n"] where this system lets us drop the network for a child process, [] otherwise."""
    if (
        shutil.which("unshare")
        and subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0
    ):
        return ["unshare", "-n"]
    return []


def errors_of(events: list[dict], session: str) -> list[str]:
    """Console errors and uncaught exceptions among the DevTools events of one page."""
    out = []
    for e in events:
        if e.get("sessionId") != session:
            continue
        p = e.get("params", {})
        if e.get("method") == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            out.append(
                f"uncaught exception: {d.get('exception', {}).get('description', d.get('text', ''))[:200]}"
            )
        elif e.get("method") == "Runtime.consoleAPICalled" and p.get("type") == "error":
            out.append(
                "console error: "
                + " ".join(str(a.get("value", a.get("description", ""))) for a in p["args"])[:200]
            )
        elif e.get("method") == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            entry = p["entry"]
            out.append(f"console error: {entry.get('text', '')[:160]} {entry.get('url', '')}")
    return out


def page_weight(page: Path) -> int:
    """Bytes of the page's own HTML (shared scripts and styles are fetched once for the whole site)."""
    return page.stat().st_size


def check(html: Path, pages: list[Path], width: int, max_mb: float) -> int:
    browser = find_browser()
    if browser is None:
        print(NO_BROWSER)
        return 2
    profile = tempfile.mkdtemp(prefix="jit-browser-check-")
    command = [
        *network_off_prefix(),
        browser,
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--remote-debugging-pipe",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        f"--window-size={width},1000",
        "--allow-file-access-from-files",
    ]
    tools = DevTools(command)
    failures = 0
    try:
        tools.call("Browser.getVersion", timeout=30)
        for page in pages:
            target = tools.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = tools.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime", "Log", "Network"):
                tools.call(f"{domain}.enable", session=session)
            # Anything but file:// would be the network: block it, whatever the sandbox allows.
            tools.call(
                "Network.setBlockedURLs", {"urls": ["http://*", "https://*", "ws://*", "wss://*"]}, session
            )
            tools.call(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": 1000, "deviceScaleFactor": 1, "mobile": False},
                session,
            )
            tools.call("Page.navigate", {"url": page.resolve().as_uri()}, session)
            tools.wait_for("Page.loadEventFired", session)
            try:
                result = tools.call(
                    "Runtime.evaluate",
                    {"expression": INSPECT, "awaitPromise": True, "returnByValue": True},
                    session,
                )
            except RuntimeError as error:  # e.g. the page navigated away while it was inspected
                result = {"exceptionDetails": {"text": str(error)}}
            if "exceptionDetails" in result:
                report = {"problems": [f"the check itself failed: {result['exceptionDetails'].get('text')}"]}
            else:
                report = result["result"]["value"]
            problems = report["problems"] + errors_of(tools.events, session)
            weight = page_weight(page)
            if weight > max_mb * 1e6:
                problems.append(f"page weighs {weight / 1e6:.2f} MB (limit {max_mb:g} MB)")
            name = page.relative_to(html)
            summary = (
                f"{weight / 1e6:5.2f} MB, {report.get('figures', 0)} plotly figures, "
                f"{report.get('moved', 0)}/{report.get('sliders', 0)} static sliders move"
            )
            print(f"{'FAIL' if problems else 'ok  '} {name}  ({summary})")
            for problem in problems:
                print(f"       {problem}")
            failures += bool(problems)
            tools.call("Target.closeTarget", {"targetId": target})
    finally:
        tools.close()
        shutil.rmtree(profile, ignore_errors=True)
    isolation = "network namespace off" if network_off_prefix() else "requests blocked"
    print(
        f"browser check: {len(pages) - failures}/{len(pages)} pages pass ({Path(browser).name}, {isolation}, {width} px)"
    )
    return 1 if failures else 0


def built_pages(html: Path) -> list[Path]:
    """Every page of the book a reader opens (chapters, appendices, index pages; not the generated source listings
    nor a page that only redirects to another, like the root index.html)."""
    pages = sorted((html / "book").glob("*.html")) + sorted(html.glob("*.html"))
    return [p for p in pages if 'http-equiv="refresh"' not in p.read_text(encoding="utf-8").lower()[:2000]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", nargs="?", default=str(ROOT / "_build" / "html"), help="the built book")
    parser.add_argument("--pages", nargs="*", help="pages relative to the built book (default: all)")
    parser.add_argument("--width", type=int, default=1280, help="window width in CSS px")
    parser.add_argument("--max-mb", type=float, default=1.5, help="largest HTML page allowed, MB")
    args = parser.parse_args(argv)
    html = Path(args.html)
    if not (html / "index.html").exists():
        print(
            f"browser check: {html / 'index.html'} does not exist; build the book first (bash scripts/build_book.sh)"
        )
        return 1
    pages = [html / p for p in args.pages] if args.pages else built_pages(html)
    missing = [str(p) for p in pages if not p.exists()]
    if missing:
        print(f"browser check: no such page(s): {', '.join(missing)}")
        return 1
    return check(html, pages, args.width, args.max_mb)


if __name__ == "__main__":
    sys.exit(main())
