# Push a directory with rsync in parallel streams. Runs on the sending host (tasks/rsync.yml),
# stdlib only. One rsync over SSH leaves CPUs idle: SSH encrypts in one process and rsync's
# processes wait on each other's pipes. Several streams, each with its own SSH connection (never a
# shared ControlMaster, whose one process would encrypt for all of them), keep every core busy.
#
# Usage: rsync_streams.py STREAMS MIN_STREAM_BYTES STREAM_SSH -- rsync OPTION... -e SSH -- SRC/ DEST/
# The rsync command after the first "--" is the whole transfer as a single rsync would do it.
# 1. The regular files under SRC are dealt into at most STREAMS lists of about equal size (largest
#    first; at least MIN_STREAM_BYTES per stream), each sent by its own rsync (--files-from, names
#    NUL-separated, so any name is safe) with STREAM_SSH as its remote shell, all at once.
# 2. Then the given rsync command runs once, unchanged: it sends what the streams did not
#    (directories, links, attributes), deletes what its --delete deletes and catches what changed
#    meanwhile, so the result is exactly what that command alone would give.
# With one stream, too little data, or --dry-run, only step 2 runs (the process becomes rsync).
# Output: every rsync's output, streams first. Exit status: a stream's own failure (other than 24,
# files that vanished while the source is in use) stops here with its status; otherwise the
# final rsync's status, or 24 if only a stream saw files vanish and the final rsync exited 0.
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

VANISHED = 24


def regular_files(top):
    """(size, path relative to top) of every regular file under top; links are not followed."""
    found = []
    for directory, _dirs, names in os.walk(top):
        for name in names:
            path = os.path.join(directory, name)
            try:
                st = os.lstat(path)
            except OSError:  # vanished while walking: the final rsync deals with it
                continue
            if (st.st_mode & 0o170000) == 0o100000:
                found.append((st.st_size, os.path.relpath(path, top)))
    return found


def deal(files, streams, min_bytes):
    """Largest first, each file to the lightest list: lists of about equal total size."""
    total = sum(size for size, _ in files)
    count = max(1, min(streams, len(files), total // max(1, min_bytes)))
    lists = [[0, []] for _ in range(count)]
    for size, path in sorted(files, reverse=True):
        lightest = min(lists, key=lambda entry: entry[0])
        lightest[0] += size
        lightest[1].append(path)
    return [paths for _, paths in lists]


def stream_argv(argv, stream_ssh):
    """The stream's rsync: the final command's, without --delete (a partial list must not delete
    anything), with its own SSH, reading its file list from stdin."""
    cut = argv.index("--", 1)
    options = [option for option in argv[1:cut] if not option.startswith("--delete")]
    options[options.index("-e") + 1] = stream_ssh
    return [argv[0], *options, "--files-from=-", "--from0", *argv[cut:]]


def main(args):
    streams, min_bytes, stream_ssh = int(args[0]), int(args[1]), args[2]
    if args[3] != "--":
        raise SystemExit("usage: rsync_streams.py STREAMS MIN_STREAM_BYTES STREAM_SSH -- rsync ...")
    final = args[4:]
    source = final[-2]
    sys.stdout.flush()
    lists = [] if streams < 2 or "--dry-run" in final or not os.path.isdir(source) else deal(
        regular_files(source), streams, min_bytes)
    if len(lists) < 2:
        os.execvp(final[0], final)  # noqa: S606 (an argv, no shell)
    command = stream_argv(final, stream_ssh)

    def send(paths):
        names = b"".join(os.fsencode(path) + b"\0" for path in paths)
        return subprocess.run(command, input=names, capture_output=True, check=False)

    with ThreadPoolExecutor(len(lists)) as pool:
        results = list(pool.map(send, lists))
    vanished = False
    for result in results:
        sys.stdout.buffer.write(result.stdout)
        sys.stderr.buffer.write(result.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    for number, result in enumerate(results, 1):
        if result.returncode == VANISHED:
            vanished = True
        elif result.returncode != 0:
            sys.stderr.write(f"rsync_streams.py: stream {number} of {len(results)} exited {result.returncode}\n")
            return result.returncode
    status = subprocess.run(final, check=False).returncode
    return VANISHED if status == 0 and vanished else status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
