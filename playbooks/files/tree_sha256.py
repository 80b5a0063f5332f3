"""Print, as JSON, [relative path, size, sha256] for every file under a directory, sorted by path.

Run by verify.yml as `python3 -c <this> DATA_PATH` on both hosts; a missing directory prints [].
Symbolic links are listed with their target (prefixed "link:") instead of a hash.
"""

import hashlib
import json
import os
import sys

root = sys.argv[1]
out = []
for parent, dirs, files in os.walk(root):
    dirs.sort()
    for name in sorted(files):
        path = os.path.join(parent, name)
        rel = os.path.relpath(path, root)
        if os.path.islink(path):
            out.append([rel, 0, "link:" + os.readlink(path)])
            continue
        with open(path, "rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
        out.append([rel, os.path.getsize(path), digest])
json.dump(sorted(out), sys.stdout)
