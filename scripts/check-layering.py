#!/usr/bin/env python3
"""Checks the layering of src/ from the #includes (make test runs it).

1. Each part includes only the parts it may use (ALLOWED below, the table in
   docs/architecture.md); its tests may use the same parts.
2. No circles between files: a file's .h and .cc are one unit, and no unit
   reaches itself through the includes of others.

Prints what is wrong and exits 1, or prints the part graph and exits 0.
"""
import os
import re
import sys

ALLOWED = {
    "core": set(),
    "protocol": {"core"},
    "store": {"core"},
    "backends": {"core"},
    "client": {"core", "protocol"},
    "monitoring": {"core", "store", "protocol"},
    "scheduling": {"core", "backends", "monitoring"},
    "repository": {"core", "backends", "monitoring", "scheduling"},
    "routing": {"core", "monitoring", "store", "scheduling", "repository"},
    "rollout": {"core", "routing", "monitoring", "store", "protocol"},
    "net": {"core", "protocol", "monitoring"},
    "tuning": {"core", "protocol", "store", "backends", "monitoring", "repository"},
    "server": {"core", "protocol", "net", "client", "store", "backends", "monitoring", "scheduling", "repository",
               "routing", "rollout"},
    "cli": {"core", "protocol", "client", "store", "backends", "monitoring", "scheduling", "repository", "routing",
            "rollout", "net", "server", "tuning"},
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([a-z_]+)/([^"]+)"', re.M)


def main(root):
    src = os.path.join(root, "src")
    problems = []
    units = {}  # "part/stem" -> set of "part/stem" it includes
    used = {}   # part -> parts it includes (non-test)
    for part in sorted(os.listdir(src)):
        folder = os.path.join(src, part)
        if not os.path.isdir(folder):
            continue
        if part not in ALLOWED:
            problems.append(f"src/{part}: a part that is not in the table (scripts/check-layering.py, "
                            "docs/architecture.md)")
            continue
        for name in sorted(os.listdir(folder)):
            if not name.endswith((".h", ".cc")):
                continue
            path = os.path.join(folder, name)
            with open(path, encoding="utf-8") as f:
                text = f.read()
            stem = os.path.splitext(name)[0]
            unit = f"{part}/{stem}"
            for other, header in INCLUDE.findall(text):
                if other not in ALLOWED:
                    continue  # a generated header (grpc_predict_v2.*) or a library
                if other != part and other not in ALLOWED[part]:
                    problems.append(f"src/{part}/{name} includes {other}/{header}: {part} may include only "
                                    f"{', '.join(sorted(ALLOWED[part])) or 'no other part'}")
                if not stem.endswith("_test"):
                    if other != part:
                        used.setdefault(part, set()).add(other)
                    target = f"{other}/{os.path.splitext(header)[0]}"
                    if target != unit:
                        units.setdefault(unit, set()).add(target)

    # Circles between units, by depth-first search.
    state = {}
    stack = []

    def visit(u):
        state[u] = 1
        stack.append(u)
        for v in sorted(units.get(u, ())):
            if state.get(v) == 1:
                cycle = stack[stack.index(v):] + [v]
                problems.append("include circle: " + " -> ".join(cycle))
            elif v not in state:
                visit(v)
        stack.pop()
        state[u] = 2

    for u in sorted(units):
        if u not in state:
            visit(u)

    if problems:
        for p in problems:
            print(p)
        return 1
    for part in ALLOWED:
        print(f"{part:<11} includes {', '.join(sorted(used.get(part, ()))) or '-'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")))
