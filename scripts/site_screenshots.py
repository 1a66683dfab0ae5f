"""Build the documentation site, serve it on localhost and screenshot pages in headless Chromium.

    python scripts/site_screenshots.py --out site-shots methods/hnet/ results/split_mnist5k/results/

Needs Debian's ``chromium``. Prints each PNG's path, and any console error the page logged.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from site_browser import CHROMIUM, build_site, screenshot, serve  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("pages", nargs="*", default=["", "methods/hnet/"], help="paths below the site root")
    p.add_argument("--out", default="site-shots", help="folder for the PNG files")
    p.add_argument("--size", default="1280,1600", help="window width,height in pixels")
    args = p.parse_args(argv)
    if CHROMIUM is None:
        print("error: Debian's chromium is not installed (apt-get install -y chromium)", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    errors = 0
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        build_site(site)
        with serve(site) as url:
            for page in args.pages:
                shot = out / ((page.strip("/").replace("/", "_") or "home") + ".png")
                bad = screenshot(f"{url}/{page}", shot, Path(tmp) / "profile", size=args.size)
                errors += len(bad)
                print(f"{shot}  ({'no console errors' if not bad else f'{len(bad)} console error(s)'})")
                for line in bad:
                    print("   ", line)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
