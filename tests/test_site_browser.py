"""Every page of the built site, opened in headless Chromium at 1280x900 with no network beyond
localhost: it loads without a console error or a request that leaves the machine, its maths is
rendered (no LaTeX left as text), its tables and code blocks show all their content, and the
site's search lists the method page first."""

import pytest

from site_browser import CHROMIUM, Chromium, build_site, serve, site_pages
from site_text import raw_tex

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")

# one page of each kind, which the walk over the built site must have found
KINDS = ["", "getting-started/", "results/", "methods/ewc/", "methods/latent_replay/", "methods/gnr/",
         "results/split_mnist5k/results/", "results/validation/ewc_split_mnist5k_task/", "results/gnr/", "api/"]


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """(site folder, its URL, a browser at 1280x900)."""
    site = tmp_path_factory.mktemp("site")
    build_site(site)
    with serve(site) as url, Chromium(tmp_path_factory.mktemp("profile"), 1280, 900) as chromium:
        yield site, url, chromium


@pytest.fixture(scope="module")
def visits(browser):
    site, url, chromium = browser
    return {page: chromium.visit(f"{url}/{page}") for page in site_pages(site)}


def test_every_page_loads_offline_without_console_errors(visits):
    assert set(KINDS) <= set(visits), f"pages not built: {sorted(set(KINDS) - set(visits))}"
    errors = [f"/{page}: {error}" for page, visit in visits.items() for error in visit.errors]
    assert not errors, "console errors:\n" + "\n".join(errors)
    external = [f"/{page}: {target}" for page, visit in visits.items() for target in visit.external]
    assert not external, "requests that need the network (web fonts?):\n" + "\n".join(external)
    untitled = [page for page, visit in visits.items() if "avalanche-ext" not in visit.check["title"]]
    assert not untitled, f"pages that did not render: {untitled}"


def test_no_page_shows_latex_source(visits):
    left = [f"/{page}: ...{found}..." for page, visit in visits.items() for found in raw_tex(visit.check["text"])]
    assert not left, "LaTeX shown as text outside code:\n" + "\n".join(left)
    without_math = [p for p in ("methods/ewc/", "methods/latent_replay/", "methods/exstream/", "methods/gnr/")
                    if visits[p].check["math"] == 0]
    assert not without_math, f"method pages whose formulas did not reach the browser as MathML: {without_math}"


def test_tables_and_code_blocks_show_all_their_content_at_1280px(visits):
    """A code block wraps its long lines; a table (or a display formula) fits the page or scrolls
    with a scrollbar drawn and a shadow on the edge it hides; the page itself never scrolls sideways."""
    hidden = []
    for page, visit in visits.items():
        if visit.check["page_overflow"] > 0:
            hidden.append(f"/{page}: the page is {visit.check['page_overflow']} px wider than the window")
        for box in visit.check["overflowing"]:
            reachable = box["what"] != "code" and box["scrollable"] and box["scrollbar"] > 0 and box["shadow"]
            if not reachable or not box["inside_window"]:
                hidden.append(f"/{page}: {box['what']} hides {box['hidden']} px: {box['text'][:60]!r}")
    assert not hidden, "content cut off at 1280 px:\n" + "\n".join(hidden)


@pytest.mark.parametrize("query, page", [("ewc_lambda", "/methods/ewc/"), ("linkage", "/methods/exstream/"),
                                         ("hnet", "/methods/hnet/"), ("progress_compress", "/methods/progress_compress/")])
def test_search_lists_the_method_page_first(browser, query, page):
    _, url, chromium = browser
    chromium.visit(f"{url}/", check=False)
    found = [link.split("#")[0] for link in chromium.search(query)]
    assert found and found[0] == page, found[:8]
    if query == "ewc_lambda":  # every method page that names it comes before every validation record
        first_record = min(i for i, f in enumerate(found) if f.startswith("/results/validation/"))
        assert max(i for i, f in enumerate(found) if f.startswith("/methods/")) < first_record, found
