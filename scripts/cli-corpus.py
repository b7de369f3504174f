#!/usr/bin/env python3
"""The corpus of `scripts/compare cli-vs-git`, as a dsf-cli document and as a git working tree.

    scripts/cli-corpus.py JSON TREE [--lists N] [--width M]

Writes the same graph twice, deterministically (a fixed seed):

- JSON: a working-copy document (the form of root.json, see `dsf-cli help-document`): a root
  net.ooici.play.ListObj whose `items` hold N ListObjs (default 100), each holding M
  net.ooici.play.KeyValues (default 1000), every object inline with its "@type";
- TREE: a folder (made if missing) with N folders `list-NNN` of M files `kv-NNNN.json`, each
  holding the JSON of one KeyValue (the same object, one per line).

Every KeyValue has a distinct key and a value of 200 to 400 bytes of varied text.
"""

import argparse
import json
import os
import random
import sys

SEED = 0x0D5FBE4C
KEY_VALUE = "net.ooici.play.KeyValue"
LIST_OBJ = "net.ooici.play.ListObj"
WORDS = (
    "salinity temperature pressure depth conductivity oxygen nitrate chlorophyll turbidity "
    "current wind swell buoy mooring glider profiler cruise station transect sample calibrated "
    "raw averaged hourly daily north south east west shelf slope basin surface bottom "
    "instrument sensor serial firmware deployed recovered nominal flagged suspect good"
).split()


def key_value(rng: random.Random, i: int) -> dict:
    target = rng.randint(200, 400)
    words = [f"obs {i}:"]
    length = len(words[0])
    while length < target:
        word = rng.choice(WORDS) if rng.random() < 0.8 else f"{rng.uniform(-100, 100):.3f}"
        words.append(word)
        length += len(word) + 1
    value = " ".join(words)[:target]
    return {"@type": KEY_VALUE, "key": f"sensor/{i:07d}/reading", "value": value}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", help="the document to write")
    parser.add_argument("tree", help="the folder of the git working tree to write")
    parser.add_argument("--lists", type=int, default=100, help="ListObjs under the root (default 100)")
    parser.add_argument("--width", type=int, default=1000, help="KeyValues per ListObj (default 1000)")
    args = parser.parse_args()

    rng = random.Random(SEED)
    lists = []
    for n in range(args.lists):
        folder = os.path.join(args.tree, f"list-{n:03d}")
        os.makedirs(folder, exist_ok=True)
        items = []
        for m in range(args.width):
            kv = key_value(rng, n * args.width + m)
            items.append(kv)
            with open(os.path.join(folder, f"kv-{m:04d}.json"), "w", encoding="utf-8") as f:
                f.write(json.dumps(kv) + "\n")
        lists.append({"@type": LIST_OBJ, "items": items})
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump({"@type": LIST_OBJ, "items": lists}, f)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
