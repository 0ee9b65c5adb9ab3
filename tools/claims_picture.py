"""The README's picture of a study's claims table: the table of ``report.html``, as Chromium draws it.

    python tools/claims_picture.py runs/reproduce/report.html docs/images/claims-small.png

Uses Debian's Chromium (``make test`` installs it) through Playwright, as the browser tests do.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", type=Path, help="a study's report.html")
    parser.add_argument("picture", type=Path, help="the PNG to write")
    parser.add_argument("--width", type=int, default=1500, help="the page's width in CSS pixels")
    parser.add_argument("--chromium", default=CHROMIUM)
    args = parser.parse_args()
    args.picture.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium,
                                             args=["--headless", "--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": args.width, "height": 900}, device_scale_factor=1)
        page.goto(args.report.resolve().as_uri())
        page.add_style_tag(content="main { max-width: none; }")  # the whole width: a shorter picture
        page.locator("table.claims").screenshot(path=str(args.picture))
        browser.close()
    print(f"written: {args.picture}")


if __name__ == "__main__":
    main()
