"""A service of this workspace: its routes live in app.py."""
