"""Build the documentation site, serve it on localhost and open its pages in headless Chromium.

Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``), so one
browser visits every page and no Python package beyond the standard library is needed. Shared by
``tests/test_site_browser.py`` and ``scripts/site_screenshots.py``.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import http.server
import json
import os
import select
import shutil
import socketserver
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--mute-audio"]
# what a reader sees, measured in the page: text outside code and maths, and what a table or a
# code block hides beyond its right edge without a scrollbar to reach it
PAGE_CHECK = (Path(__file__).with_name("site_page_check.js")).read_text(encoding="utf-8")


# type the query into Material's search box (again until its index has loaded), read the result links
_SEARCH = """(async (query, tries) => {
  const input = document.querySelector("[data-md-component=search-query]");
  for (let i = 0; i < tries; i++) {
    if (i %% 10 === 0) {
      input.focus();
      input.value = query;
      input.dispatchEvent(new Event("input", {bubbles: true}));
      input.dispatchEvent(new KeyboardEvent("keyup", {bubbles: true, key: query.slice(-1)}));
    }
    const links = document.querySelectorAll(".md-search-result__item > a.md-search-result__link");
    if (links.length) return [...links].map(a => new URL(a.href).pathname + new URL(a.href).hash);
    await new Promise(done => setTimeout(done, 100));
  }
  return [];
})(%s, %d)"""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # no access log on the terminal
        pass


def build_site(site: Path) -> None:
    """``mkdocs build`` of the project into ``site``."""
    subprocess.run([sys.executable, "-m", "mkdocs", "build", "-q", "-d", str(site)], cwd=ROOT, check=True,
                   env=dict(os.environ, NO_MKDOCS_2_WARNING="1"), timeout=600)


def site_pages(site: Path) -> list[str]:
    """The path below the site root of every built page (``""`` for the home page), sorted."""
    pages = []
    for html in sorted(site.rglob("*.html")):
        rel = html.relative_to(site).as_posix()
        pages.append(rel[:-len("index.html")] if rel.endswith("index.html") else rel)
    return pages


@contextlib.contextmanager
def serve(site: Path) -> Iterator[str]:
    """Serve ``site`` on a free localhost port; yields its URL."""
    server = socketserver.TCPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _above_100(fd: int) -> int:
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 100)
    os.close(fd)
    return high


@dataclass
class Visit:
    """What loading one page gave: console errors, requests that left localhost, and the page check."""

    url: str
    errors: list[str] = field(default_factory=list)
    external: list[str] = field(default_factory=list)
    check: dict = field(default_factory=dict)


class Chromium:
    """One headless Chromium and one tab, driven over the DevTools protocol on a pipe."""

    def __init__(self, profile: Path, width: int = 1280, height: int = 900):
        if CHROMIUM is None:
            raise RuntimeError("Debian's chromium is not installed (apt-get install -y chromium)")
        to_chrome, self._out = os.pipe()
        self._in, from_chrome = os.pipe()
        # Chromium reads commands on fd 3 and writes answers on fd 4 (bash moves them there); the
        # pipe's ends are first moved to numbers above 100, so that neither is itself 3 or 4
        to_chrome, from_chrome = (_above_100(fd) for fd in (to_chrome, from_chrome))
        self.proc = subprocess.Popen(
            ["bash", "-c", f'exec "$0" "$@" 3<&{to_chrome} 4>&{from_chrome}', CHROMIUM, *FLAGS,
             "--remote-debugging-pipe", f"--user-data-dir={profile}", f"--window-size={width},{height}"],
            pass_fds=(to_chrome, from_chrome), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome)
        os.close(from_chrome)
        self._buffer, self._next_id, self.events = b"", 0, []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable", session=True)
        self.resize(width, height)

    def _read(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while b"\0" not in self._buffer:
            if not select.select([self._in], [], [], max(0.0, deadline - time.monotonic()))[0]:
                raise TimeoutError("Chromium did not answer")
            chunk = os.read(self._in, 1 << 16)
            if not chunk:
                raise RuntimeError("Chromium closed its DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, session: bool = False, timeout: float = 60, **params) -> dict:
        """Send one command and return its result; events that arrive meanwhile go to ``events``."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        while True:
            answer = self._read(timeout)
            if answer.get("id") != self._next_id:
                self.events.append(answer)
            elif "error" in answer:
                raise RuntimeError(f"{method}: {answer['error']}")
            else:
                return answer.get("result", {})

    def wait_for(self, event: str, timeout: float = 60) -> None:
        """Wait until ``event`` arrives (or has arrived since ``events`` was last cleared)."""
        while not any(e.get("method") == event for e in self.events):
            self.events.append(self._read(timeout))

    def resize(self, width: int, height: int) -> None:
        self.call("Emulation.setDeviceMetricsOverride", session=True, width=width, height=height,
                  deviceScaleFactor=1, mobile=False)

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page (a promise is awaited)."""
        result = self.call("Runtime.evaluate", session=True, expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def visit(self, url: str, check: bool = True) -> Visit:
        """Load ``url``, let its scripts settle and run the page check on it."""
        self.events = []
        self.call("Page.navigate", session=True, url=url)
        self.wait_for("Page.loadEventFired")
        visit = Visit(url, check=self.evaluate(PAGE_CHECK) if check else {})
        self.evaluate("new Promise(done => setTimeout(done, 50))")  # late console messages arrive
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                visit.errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params["args"]))
            elif method == "Runtime.exceptionThrown":
                visit.errors.append(params["exceptionDetails"].get("text", "exception"))
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                visit.errors.append(f"{params['entry']['text']} {params['entry'].get('url', '')}".strip())
            elif method == "Network.requestWillBeSent":
                target = params["request"]["url"]
                if not target.startswith(("http://127.0.0.1", "data:", "blob:", "about:")):
                    visit.external.append(target)
        return visit

    def search(self, query: str, timeout_s: float = 20) -> list[str]:
        """The links the site's own search box lists for ``query``, best first (on the current page)."""
        return self.evaluate(_SEARCH % (json.dumps(query), int(timeout_s * 10)))

    def screenshot(self, shot: Path, full_page: bool = False) -> None:
        """Save the viewport (or the whole page) as a PNG."""
        params = {"format": "png"}
        if full_page:
            params["captureBeyondViewport"] = True
            size = self.call("Page.getLayoutMetrics", session=True)["cssContentSize"]
            params["clip"] = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        Path(shot).write_bytes(base64.b64decode(self.call("Page.captureScreenshot", session=True, **params)["data"]))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.call("Browser.close", timeout=10)
        os.close(self._out)
        os.close(self._in)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> "Chromium":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
