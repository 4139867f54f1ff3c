"""Merge the bench.json / bench.md of several `vim-deploy bench` runs (one device call) into one file each.

    python bench/merge_bench.py OUT_PREFIX DIR [DIR ...]   ->  OUT_PREFIX.json, OUT_PREFIX.md
"""

import json
import os
import sys


def main():
    prefix, dirs = sys.argv[1], sys.argv[2:]
    runs, md = [], []
    for d in dirs:
        path = os.path.join(d, "bench.json")
        if not os.path.exists(path):
            md.append(f"## {os.path.basename(d)}: no result\n")
            continue
        with open(path) as f:
            runs.append({"run": os.path.basename(d), **json.load(f)})
        with open(os.path.join(d, "bench.md")) as f:
            md.append(f"## {os.path.basename(d)}\n\n" + f.read())
    with open(prefix + ".json", "w") as f:
        json.dump({"runs": runs}, f, indent=1)
    with open(prefix + ".md", "w") as f:
        f.write("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
