"""The time from a click on a poster's heatmap cell to its first painted traversal, in Chromium.

Serves ``STUDY/poster`` on a local port (betavae's own server), opens it in Debian's Chromium through
Playwright, and clicks every grid setting of every part in turn, each in a freshly loaded page once
ONNX Runtime Web is warm (as a reader's first click after the page opened): the page's own clock
(``window.betavaePoster.timings``) measures from the click to the painted traversal grid of every run
the cell opens (its seeds, decoded one after another): to the first run's first rows (its most informative
dimensions), to its whole traversal, and to every seed's. Prints the median and the largest per part and
latent size, and with
``--screenshots DIR`` writes the poster at desktop and phone width with a cell opened (the README's
and docs/guide/poster.md's pictures).

    python tools/poster_timing.py runs/reproduce --screenshots docs/images
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import defaultdict
from pathlib import Path

from betavae.demo.server import DemoServer
from betavae.poster import POSTER_DIR

CHROMIUM = "/usr/bin/chromium"
ALL_PAINTED = ("() => window.betavaePoster.opened.length > 0 && "
               "window.betavaePoster.opened.every(entry => entry.traversalPaintedAt !== null)")
VIEWPORTS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", type=Path)
    parser.add_argument("--screenshots", type=Path, help="write poster-desktop.png and poster-phone.png here")
    parser.add_argument("--part", help="the part whose cell the screenshots open  [default: the first]")
    parser.add_argument("--hover-ms", type=float, default=0.0,
                        help="rest the pointer on the cell this long before the click (as a mouse user "
                             "does: the page fetches the setting's first run meanwhile)  [default: 0]")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    folder = args.study / POSTER_DIR
    manifest = json.loads((folder / "poster.json").read_text(encoding="utf-8"))
    # per part and latent size: the first run's first rows, its whole traversal, every run's whole traversal
    times: dict[tuple[str, int], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    with DemoServer(folder, port=0) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        for part in manifest["parts"]:
            for latent_dim in part["latent_dims"]:
                for beta_norm in part["beta_norms"]:
                    page = open_page(browser, server.url, VIEWPORTS["desktop"])
                    click_cell(page, part["folder"], beta_norm, latent_dim, args.hover_ms)
                    timings = page.evaluate("window.betavaePoster.timings")
                    kept = times[(part["folder"], latent_dim)]
                    kept["first rows"].append(timings[0]["firstRowsMs"])
                    kept["first traversal"].append(timings[0]["ms"])
                    kept["every seed's traversal"].append(max(t["ms"] for t in timings))
                    page.close()
        print("click → painted, median (largest) over the settings, in ms:")
        for (folder_name, latent_dim), kinds in times.items():
            cells = ", ".join(f"{kind} {statistics.median(values):.0f} ({max(values):.0f})"
                              for kind, values in kinds.items())
            print(f"{folder_name} M={latent_dim} ({len(kinds['first rows'])} settings): {cells}")
        if args.screenshots:
            args.screenshots.mkdir(parents=True, exist_ok=True)
            part = next((p for p in manifest["parts"] if p["folder"] == args.part), manifest["parts"][0])
            for name, viewport in VIEWPORTS.items():
                page = open_page(browser, server.url, viewport)
                # the desktop beside the figures the largest latent size, a phone a whole card of the smallest
                latent_dim = part["latent_dims"][-1 if name == "desktop" else 0]
                click_cell(page, part["folder"], part["beta_norms"][0], latent_dim)
                time.sleep(0.3)
                target = "#tabs" if name == "desktop" else "article.card"
                page.eval_on_selector(target, "node => node.scrollIntoView({block: 'start'})")
                page.screenshot(path=str(args.screenshots / f"poster-{name}.png"))
                print(f"wrote {args.screenshots / f'poster-{name}.png'}")
                page.close()
        browser.close()


def open_page(browser, url: str, viewport: dict[str, int]):
    page = browser.new_page(viewport=viewport)
    page.goto(url)
    page.evaluate("() => window.betavaePoster.ready")
    page.evaluate("() => window.betavaePoster.warmed")
    return page


def click_cell(page, part: str, beta_norm: float, latent_dim: int, hover_ms: float = 0.0) -> None:
    page.click(f'.tab[data-part="{part}"]')
    cells = page.locator(f'#part-{part} .heatmap:first-child .cell[data-latent-dim="{latent_dim}"]')
    for index in range(cells.count()):
        if abs(float(cells.nth(index).get_attribute("data-beta-norm")) - beta_norm) <= 1e-9 * beta_norm:
            if hover_ms:
                cells.nth(index).hover()
                page.wait_for_timeout(hover_ms)
            cells.nth(index).click()
            page.wait_for_function(ALL_PAINTED)
            return
    raise SystemExit(f"no cell for β_norm {beta_norm}, M {latent_dim} in {part}")


if __name__ == "__main__":
    main()
