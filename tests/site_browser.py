"""Build the documentation site, serve it on localhost and open pages in headless Chromium.

Shared by ``tests/test_site_browser.py`` and ``scripts/site_screenshots.py``.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import shutil
import socketserver
import subprocess
import sys
import threading
from functools import partial
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--enable-logging=stderr", "--v=0"]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # no access log on the terminal
        pass


def build_site(site: Path) -> None:
    """``mkdocs build`` of the project into ``site``."""
    subprocess.run([sys.executable, "-m", "mkdocs", "build", "-q", "-d", str(site)], cwd=ROOT, check=True,
                   env=dict(os.environ, NO_MKDOCS_2_WARNING="1"), timeout=600)


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


def screenshot(url: str, shot: Path, profile: Path, size: str = "1280,900") -> list[str]:
    """Load ``url`` in headless Chromium, save a screenshot to ``shot``; return the console errors."""
    proc = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--window-size={size}",
                           f"--screenshot={Path(shot).resolve()}", url], capture_output=True, text=True, timeout=120)
    console = [line for line in proc.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    return [line for line in console if "error" in line.lower() or "Uncaught" in line]


def dump_dom(url: str, profile: Path) -> str:
    """The page's DOM after its scripts ran."""
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
                          capture_output=True, text=True, timeout=120).stdout
