"""Rendering results: Markdown/CSV tables and matplotlib figures."""
