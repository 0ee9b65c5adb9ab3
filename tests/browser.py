"""Debian's Chromium as the browser tests drive it through Playwright (no browser download works here)."""

from __future__ import annotations

import os
from pathlib import Path

CHROMIUM = Path(os.environ.get("BETAVAE_CHROMIUM", "/usr/bin/chromium"))
# Without the background-networking flags Chromium keeps calling Google's hosts, which this
# machine's closed network refuses; --no-sandbox because CI runs as root.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
