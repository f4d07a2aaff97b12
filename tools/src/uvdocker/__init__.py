"""Helpers behind noxfile.py: host detection, build-log parsing, reports. Plain Python, tested."""
