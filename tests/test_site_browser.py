"""The built site renders in a real browser (headless Chromium) without console errors."""

import pytest

from site_browser import CHROMIUM, build_site, dump_dom, screenshot, serve


@pytest.fixture(scope="module")
def site_url(tmp_path_factory):
    site = tmp_path_factory.mktemp("site")
    build_site(site)
    with serve(site) as url:
        yield url


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
@pytest.mark.parametrize("page", ["", "methods/hnet/", "results/split_mnist5k/results/"])
def test_page_loads_without_console_errors(site_url, page, tmp_path):
    shot = tmp_path / "page.png"
    errors = screenshot(f"{site_url}/{page}", shot, tmp_path / "profile")
    assert not errors, "\n".join(errors)
    assert shot.is_file() and shot.stat().st_size > 10_000  # a rendered page, not a blank one
    dom = dump_dom(f"{site_url}/{page}", tmp_path / "profile2")
    assert "avalanche-ext" in dom and "<nav" in dom
    if page.startswith("methods/"):
        assert "<math" in dom  # formulas reach the browser as MathML, not as raw LaTeX
