"""Fetch BASE_URL + RELATIVE_PATH and exit 0 when its sha256 is EXPECTED (or, with no path, when
the server answers at all); exit 1 otherwise. Retries briefly: a service just started may not be
listening yet.

Run by verify.yml as `python3 -c <this> BASE_URL RELATIVE_PATH EXPECTED ATTEMPTS`.
"""

import hashlib
import sys
import time
import urllib.parse
import urllib.request

base, rel, expected, attempts = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
url = base + urllib.parse.quote(rel)
error = ""
for _attempt in range(attempts):
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (http URL from the inventory)
            digest = hashlib.sha256()
            while chunk := response.read(1 << 20):
                digest.update(chunk)
    except OSError as exc:
        error = f"{url}: {exc}"
        time.sleep(0.5)
        continue
    if rel and digest.hexdigest() != expected:
        sys.exit(f"{url}: sha256 {digest.hexdigest()}, expected {expected}")
    print(f"{url}: ok")
    sys.exit(0)
sys.exit(error)
