"""Every page of the built site, opened in headless Chromium at 1280x900 with no network beyond
localhost: it loads without a console error or a request that leaves the machine, its maths is
rendered (no LaTeX left as text), its tables and code blocks show all their content, and the
site's search lists the method page first.

Two tests, each building the site once: under ``pytest -n`` tests of one module may run in
different workers, each with its own module fixture, so the checks of the page walk share one test.
"""

import pytest

from site_browser import CHROMIUM, Chromium, build_site, serve, site_pages
from site_text import raw_tex

pytestmark = [pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)"),
              pytest.mark.slow]  # builds the site and walks it in a browser: `make test-slow`, which CI runs

# one page of each kind, which the walk over the built site must have found
KINDS = ["", "getting-started/", "results/", "methods/ewc/", "methods/latent_replay/", "methods/gnr/",
         "results/split_mnist5k/results/", "results/validation/ewc_split_mnist5k_task/", "results/gnr/", "api/"]
WITH_MATHS = ["methods/ewc/", "methods/latent_replay/", "methods/exstream/", "methods/gnr/"]


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """(site folder, its URL, a browser at 1280x900)."""
    site = tmp_path_factory.mktemp("site")
    build_site(site)
    with serve(site) as url, Chromium(tmp_path_factory.mktemp("profile"), 1280, 900) as chromium:
        yield site, url, chromium


def _cut_off(page: str, check: dict) -> list[str]:
    """What the page hides at this width: a code block must wrap its long lines; a table (or a
    display formula) fits or scrolls with a scrollbar drawn and a shadow on the edge it hides; the
    page itself never scrolls sideways."""
    hidden = [f"/{page}: the page is {check['page_overflow']} px wider than the window"] \
        if check["page_overflow"] > 0 else []
    for box in check["overflowing"]:
        reachable = box["what"] != "code" and box["scrollable"] and box["scrollbar"] > 0 and box["shadow"]
        if not reachable or not box["inside_window"]:
            hidden.append(f"/{page}: {box['what']} hides {box['hidden']} px: {box['text'][:60]!r}")
    return hidden


def test_every_page_renders_offline_with_its_maths_tables_and_code_readable(browser):
    site, url, chromium = browser
    visits = {page: chromium.visit(f"{url}/{page}") for page in site_pages(site)}
    assert set(KINDS) <= set(visits), f"pages not built: {sorted(set(KINDS) - set(visits))}"
    problems = {
        "console errors": [f"/{page}: {error}" for page, visit in visits.items() for error in visit.errors],
        "requests that need the network (web fonts?)":
            [f"/{page}: {target}" for page, visit in visits.items() for target in visit.external],
        "pages that did not render": [f"/{page}" for page, visit in visits.items()
                                      if "avalanche-ext" not in visit.check["title"]],
        "LaTeX shown as text outside code": [f"/{page}: ...{found}..." for page, visit in visits.items()
                                             for found in raw_tex(visit.check["text"])],
        "formulas that did not reach the browser as MathML": [f"/{page}" for page in WITH_MATHS
                                                              if visits[page].check["math"] == 0],
        "content cut off at 1280 px": [line for page, visit in visits.items() for line in _cut_off(page, visit.check)],
    }
    found = {kind: lines for kind, lines in problems.items() if lines}
    assert not found, "\n".join(f"{kind}:\n  " + "\n  ".join(lines) for kind, lines in found.items())


def test_search_lists_the_method_page_first(browser):
    _, url, chromium = browser
    wrong = []
    for query, page in [("ewc_lambda", "/methods/ewc/"), ("linkage", "/methods/exstream/"),
                        ("hnet", "/methods/hnet/"), ("progress_compress", "/methods/progress_compress/")]:
        chromium.visit(f"{url}/", check=False)
        found = [link.split("#")[0] for link in chromium.search(query)]
        if not found or found[0] != page:
            wrong.append(f"{query!r}: {found[:6]}")
        elif query == "ewc_lambda":  # every method page that names it comes before every validation record
            first_record = min(i for i, f in enumerate(found) if f.startswith("/results/validation/"))
            if max(i for i, f in enumerate(found) if f.startswith("/methods/")) > first_record:
                wrong.append(f"{query!r}: a validation record ranks above a method page: {found}")
    assert not wrong, "searches that do not list the method page first:\n" + "\n".join(wrong)
