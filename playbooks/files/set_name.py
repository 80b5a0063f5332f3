# Point NAME at ADDRESS in the hosts-format file PATH: the first line that names it is replaced,
# further ones dropped, and a line is added if none does. Prints "changed" or "ok"; with --check
# nothing is written. Usage: set_name.py [--check] PATH NAME ADDRESS
import re
import sys

args = sys.argv[1:]
check = bool(args) and args[0] == "--check"
path, name, address = args[1:] if check else args
with open(path, encoding="utf-8") as handle:
    lines = handle.read().splitlines()
naming = re.compile(r"^[^#\s]+\s+" + re.escape(name) + r"(\s.*)?$")
wanted = f"{address} {name}"
result, found = [], False
for line in lines:
    if not naming.match(line):
        result.append(line)
    elif not found:
        result.append(wanted)
        found = True
if not found:
    result.append(wanted)
if result != lines and not check:
    with open(path, "r+", encoding="utf-8") as handle:  # in place: see tasks/switch.yml
        handle.write("\n".join(result) + "\n")
        handle.truncate()
print("changed" if result != lines else "ok")
