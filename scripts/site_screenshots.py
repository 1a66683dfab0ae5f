"""Build the documentation site, serve it on localhost and screenshot pages in headless Chromium.

    python scripts/site_screenshots.py --out site-shots methods/hnet/ results/split_mnist5k/results/
    python scripts/site_screenshots.py --out site-shots "methods/ewc/#recipe-and-hyper-parameters"

A ``#anchor`` scrolls to that heading first; ``--full-page`` captures the whole page. Needs
Debian's ``chromium``. Prints each PNG's path, and any console error or network request the page
made beyond localhost.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from site_browser import CHROMIUM, Chromium, build_site, serve  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("pages", nargs="*", default=["", "methods/hnet/"], help="paths below the site root")
    p.add_argument("--out", default="site-shots", help="folder for the PNG files")
    p.add_argument("--size", default="1280,900", help="window width,height in pixels")
    p.add_argument("--full-page", action="store_true", help="capture the whole page, not only the window")
    args = p.parse_args(argv)
    if CHROMIUM is None:
        print("error: Debian's chromium is not installed (apt-get install -y chromium)", file=sys.stderr)
        return 2
    width, height = (int(v) for v in args.size.split(","))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    problems = 0
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        build_site(site)
        with serve(site) as url, Chromium(Path(tmp) / "profile", width, height) as browser:
            for spec in args.pages:
                page, _, anchor = spec.partition("#")
                visit = browser.visit(f"{url}/{page}", check=False)
                if anchor:  # scroll the heading to the top, then let the header settle
                    browser.evaluate(f"document.getElementById({json.dumps(anchor)}).scrollIntoView(),"
                                     "new Promise(done => setTimeout(done, 600))")
                name = "_".join(filter(None, [page.strip("/").replace("/", "_") or "home", anchor])) + ".png"
                browser.screenshot(out / name, full_page=args.full_page)
                bad = visit.errors + [f"request beyond localhost: {target}" for target in visit.external]
                problems += len(bad)
                print(f"{out / name}  ({'no console errors' if not bad else f'{len(bad)} problem(s)'})")
                for line in bad:
                    print("   ", line)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
