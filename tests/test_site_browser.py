"""The built site renders in a real browser (headless Chromium) without console errors."""

import http.server
import os
import shutil
import socketserver
import subprocess
import sys
import threading
from functools import partial
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0"]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def site_url(tmp_path_factory):
    site = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    subprocess.run([sys.executable, "-m", "mkdocs", "build", "-q", "-d", str(site)], cwd=ROOT, check=True,
                   env=env, timeout=600)
    handler = partial(_QuietHandler, directory=str(site))
    server = socketserver.TCPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
@pytest.mark.parametrize("page", ["", "methods/hnet/", "results/split_mnist5k/results/"])
def test_page_loads_without_console_errors(site_url, page, tmp_path):
    shot = tmp_path / "page.png"
    proc = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,900",
                           f"--screenshot={shot}", f"{site_url}/{page}"],
                          capture_output=True, text=True, timeout=120)
    console = [line for line in proc.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    errors = [line for line in console if "error" in line.lower() or "Uncaught" in line]
    assert not errors, "\n".join(errors)
    assert shot.is_file() and shot.stat().st_size > 10_000  # a rendered page, not a blank one
    dom = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile2'}", "--dump-dom",
                          f"{site_url}/{page}"], capture_output=True, text=True, timeout=120).stdout
    assert "avalanche-ext" in dom and "<nav" in dom
    if page.startswith("methods/"):
        assert "<math" in dom  # formulas reach the browser as MathML, not as raw LaTeX
