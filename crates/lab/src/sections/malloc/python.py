"""Allocation-heavy Python: large dicts and lists, sorting, json round trips.

Usage: python3 python.py RECORDS. Prints a checksum that is the same under
every allocator (run it with PYTHONHASHSEED=0 for steady timings).
"""

import json
import sys


def main(n):
    records = [
        {
            "id": i,
            "name": f"user{i:07d}",
            "score": (i * 7919) % 10007 / 7.0,
            "tags": [f"t{i % 13}", f"g{i % 7}", "x" * (i % 40)],
            "active": i % 3 == 0,
        }
        for i in range(n)
    ]
    by_name = {r["name"]: r for r in records}
    by_tag = {}
    for r in records:
        for t in r["tags"]:
            by_tag.setdefault(t, []).append(r["id"])
    ranked = sorted(records, key=lambda r: (r["score"], r["id"]))
    reversed_names = sorted(name[::-1] for name in by_name)
    text = json.dumps(records)
    back = json.loads(text)
    if back != records:
        sys.exit("python: the json round trip changed the records")
    again = json.dumps({k: v for k, v in by_tag.items()}, sort_keys=True)
    lists = [list(range(i % 500)) for i in range(n // 4)]
    merged = sorted(x for part in lists for x in part[::7])
    print(
        len(text)
        + len(again)
        + ranked[0]["id"]
        + len(reversed_names[-1])
        + sum(len(v) for v in by_tag.values())
        + len(merged)
        + merged[-1]
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 50000)
