"""Renderers: turn recorded results into something a person reads (terminal tables, pages, files)."""
