"""Run this service: python -m <service>."""

from shared.serve import serve

serve(f"{__package__}.app:app")
