"""Figures made from run folders."""

SVG_SETTINGS = {"svg.fonttype": "none", "svg.hashsalt": "betavae"}
"""matplotlib settings for every SVG betavae writes: text stays text (searchable and
selectable), and the ids of clip paths and markers, random otherwise, come from a fixed
salt, so that the same figure is written as the same bytes."""
