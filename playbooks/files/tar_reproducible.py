"""Write a reproducible tar.gz of a directory and print its sha256.

The same files (names, contents, modes, mtimes) always give the same bytes: entries sorted by
name, owner and group 0 without names, GNU format, gzip header without a name or a timestamp.
The output file's mtime is set to the newest mtime in the data, so rsync -a sees an unchanged
archive as unchanged. With OUTPUT "-" only the sha256 is computed (check mode).

Run by decommission.yml as `python3 -c <this> DATA_PATH OUTPUT`.
"""

import gzip
import hashlib
import os
import sys
import tarfile

root, output = sys.argv[1], sys.argv[2]


class HashingWriter:
    """A file-like sink that hashes what it is given and optionally writes it on."""

    def __init__(self, target):
        self.digest = hashlib.sha256()
        self.target = target

    def write(self, data):
        self.digest.update(data)
        if self.target is not None:
            self.target.write(data)
        return len(data)

    def flush(self):
        if self.target is not None:
            self.target.flush()


def normalize(info):
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


if not os.path.isdir(root):
    sys.exit(f"{root}: not a directory")
paths = []
newest = 0
for parent, dirs, files in os.walk(root):
    dirs.sort()
    for name in sorted(dirs + files):
        path = os.path.join(parent, name)
        paths.append(path)
        newest = max(newest, int(os.lstat(path).st_mtime))
paths.sort(key=lambda p: os.path.relpath(p, root))

temporary = None
if output != "-":
    os.makedirs(os.path.dirname(output), mode=0o700, exist_ok=True)
    temporary = output + ".part"
sink = open(temporary, "wb") if temporary else None  # noqa: SIM115 (closed below)
writer = HashingWriter(sink)
with (
    gzip.GzipFile(filename="", mode="wb", fileobj=writer, mtime=0, compresslevel=6) as compressed,
    tarfile.open(fileobj=compressed, mode="w", format=tarfile.GNU_FORMAT) as archive,
):
    archive.add(root, arcname=".", recursive=False, filter=normalize)
    for path in paths:
        archive.add(path, arcname="./" + os.path.relpath(path, root), recursive=False, filter=normalize)
if sink is not None:
    sink.close()
    os.utime(temporary, (newest, newest))
    os.replace(temporary, output)
print(writer.digest.hexdigest())
