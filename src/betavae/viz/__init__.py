"""Figures made from run folders."""
