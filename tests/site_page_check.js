// Run in a built page of the site (tests/site_browser.py): what a reader sees of it.
// text: the page's text outside code, preformatted blocks and MathML;
// overflowing: every table, code block or display formula whose content reaches past the right
// edge of the box that shows it, with whether that box scrolls, draws a scrollbar and a shadow;
// page_overflow: pixels the page is wider than the window; math: how many MathML elements.
(async () => {
  await document.fonts.ready;
  await new Promise(done => requestAnimationFrame(() => setTimeout(done, 50)));
  const article = document.querySelector("article") || document.body;

  const visible = document.body.cloneNode(true);
  visible.querySelectorAll("code, pre, math, script, style, noscript, template, textarea")
    .forEach(el => el.remove());

  // the first box, el itself or an ancestor, that hides part of el past its right edge
  const describe = (el, what) => {
    let box = el, hidden = 0;
    for (; box && box !== document.documentElement; box = box.parentElement) {
      if (getComputedStyle(box).overflowX === "visible") continue;
      hidden = Math.max(box.scrollWidth - box.clientWidth,
                        el.getBoundingClientRect().right - box.getBoundingClientRect().right);
      if (hidden > 1) break;
    }
    box = box || document.documentElement;
    const style = getComputedStyle(box);
    const borders = parseFloat(style.borderTopWidth) + parseFloat(style.borderBottomWidth);
    return {
      what,
      text: el.textContent.trim().slice(0, 80),
      hidden: Math.round(hidden),
      scrollable: ["auto", "scroll"].includes(style.overflowX),
      scrollbar: Math.round(box.offsetHeight - box.clientHeight - borders),
      shadow: style.backgroundImage.includes("gradient"),
      inside_window: el.getBoundingClientRect().left >= 0 && box.getBoundingClientRect().right <= window.innerWidth + 1,
    };
  };
  const overflowing = [...article.querySelectorAll("table"), ...article.querySelectorAll("pre > code"),
                       ...article.querySelectorAll("math[display=block]")]
    .map(el => describe(el, el.tagName.toLowerCase()))
    .filter(d => d.hidden > 1 || !d.inside_window);

  return {
    title: document.title,
    text: visible.textContent,
    overflowing,
    page_overflow: document.documentElement.scrollWidth - window.innerWidth,
    math: document.querySelectorAll("math").length,
  };
})()
