"""Build the documentation site, serve it on localhost and screenshot pages in headless Chromium.

    python scripts/site_screenshots.py --out site-shots methods/hnet/ results/split_mnist5k/results/

Needs Debian's ``chromium``. Prints each PNG's path, and any console error the page logged.
"""

from __future__ import annotations

import argparse
import http.server
import os
import shutil
import socketserver
import subprocess
import sys
import tempfile
import threading
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--hide-scrollbars", "--enable-logging=stderr", "--v=0"]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # no access log on the terminal
        pass


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("pages", nargs="*", default=["", "methods/hnet/"], help="paths below the site root")
    p.add_argument("--out", default="site-shots", help="folder for the PNG files")
    p.add_argument("--size", default="1280,1600", help="window width,height in pixels")
    args = p.parse_args(argv)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("error: Debian's chromium is not installed (apt-get install -y chromium)", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        subprocess.run([sys.executable, "-m", "mkdocs", "build", "-q", "-d", str(site)], cwd=ROOT, check=True,
                       env=dict(os.environ, NO_MKDOCS_2_WARNING="1"))
        handler = partial(_QuietHandler, directory=str(site))
        with socketserver.TCPServer(("127.0.0.1", 0), handler) as server:
            threading.Thread(target=server.serve_forever, daemon=True).start()
            url = f"http://127.0.0.1:{server.server_address[1]}"
            errors = 0
            for page in args.pages:
                shot = out / ((page.strip("/").replace("/", "_") or "home") + ".png")
                proc = subprocess.run([chromium, *FLAGS, f"--user-data-dir={Path(tmp) / 'profile'}",
                                       f"--window-size={args.size}", f"--screenshot={shot.resolve()}",
                                       f"{url}/{page}"], capture_output=True, text=True, timeout=120)
                console = [ln for ln in proc.stderr.splitlines() if "CONSOLE" in ln or "Uncaught" in ln]
                bad = [ln for ln in console if "error" in ln.lower() or "Uncaught" in ln]
                errors += len(bad)
                print(f"{shot}  ({'no console errors' if not bad else f'{len(bad)} console error(s)'})")
                for line in bad:
                    print("   ", line)
            server.shutdown()
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
