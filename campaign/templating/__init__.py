"""Marketers' templates: sandboxed Jinja2 environment, documented context, lint, render."""
