"""What every page must pass at every width: nothing wider than the screen, no axe-core violation, and a
screenshot for people to look at (written to test-artifacts/screens/, named in the README)."""

from __future__ import annotations

import re
from pathlib import Path

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page

SCREENS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screens"
LAPTOP, PHONE, SMALL_PHONE = (1366, 900), (390, 844), (320, 640)
_axe = Axe()

# Elements reaching past the viewport's right edge, unless a box that fits scrolls or clips them (a code block, a
# table or the timeline may scroll inside itself; the page may not).
_STICKING_OUT = """() => {
  const width = document.documentElement.clientWidth;
  const out = [];
  for (const element of document.querySelectorAll("body *")) {
    const box = element.getBoundingClientRect();
    if (box.width === 0 || box.right <= width + 1) continue;
    let holder = element.parentElement, held = false;
    while (holder && !held) {
      const clips = ["auto", "scroll", "hidden"].includes(getComputedStyle(holder).overflowX);
      held = clips && holder.getBoundingClientRect().right <= width + 1;
      holder = holder.parentElement;
    }
    const name = `${element.tagName.toLowerCase()}.${element.getAttribute("class") || ""}`;
    if (!held) out.push(`${name} ends at ${Math.round(box.right)} px`);
  }
  return { scrollWidth: document.documentElement.scrollWidth, width, out: out.slice(0, 5) };
}"""


def assert_fits(page: Page, name: str) -> None:
    """The page does not scroll sideways at its current width, and nothing sticks out of it."""
    found = page.evaluate(_STICKING_OUT)
    assert found["scrollWidth"] <= found["width"] and not found["out"], f"{name} at {found['width']} px: {found}"


def assert_accessible(page: Page, name: str) -> None:
    """axe-core finds no violation. Frames are checked as pages of their own (the trace page is one)."""
    results = _axe.run(page, options={"resultTypes": ["violations"], "iframes": False})
    found = [
        f"{v['id']}: {v['help']} ({', '.join(n['target'][0] for n in v['nodes'][:3])})"
        for v in results.response["violations"]
    ]
    assert not found, f"{name} at {page.viewport_size['width']} px: {found}"


def screenshot(page: Page, name: str) -> Path:
    """The first screen at the current size, as a person sees it."""
    SCREENS.mkdir(parents=True, exist_ok=True)
    width = page.viewport_size["width"]
    path = SCREENS / f"{re.sub(r'[^a-z0-9-]+', '-', name.lower()).strip('-')}-{width}.png"
    page.screenshot(path=str(path))
    return path


def check_at_every_width(page: Page, name: str, shown: str | None = None) -> None:
    """Laptop and phone: fits, passes axe, screenshot (of the part holding ``shown``, a selector, if one is named); a
    small phone: fits. Leaves the page at the laptop size."""
    for size in (PHONE, SMALL_PHONE, LAPTOP):
        page.set_viewport_size({"width": size[0], "height": size[1]})
        page.wait_for_timeout(100)  # one frame for the layout
        assert_fits(page, name)
        if size != SMALL_PHONE:
            assert_accessible(page, name)
            if shown:
                page.locator(shown).evaluate("element => element.scrollIntoView({ block: 'start' })")
            screenshot(page, name)
