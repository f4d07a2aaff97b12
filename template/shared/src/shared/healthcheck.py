"""Container health probe: exits 0 when the service's /health answers 200.

Run as `python -m shared.healthcheck`; it needs no curl in the image.
"""

from __future__ import annotations

import os
import sys
import urllib.request


def main() -> int:
    """Probe http://127.0.0.1:$PORT/health once."""
    url = f"http://127.0.0.1:{os.environ.get('PORT', '8000')}/health"
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return 0 if response.status == 200 else 1
    except OSError as error:
        print(f"unhealthy: {url}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
