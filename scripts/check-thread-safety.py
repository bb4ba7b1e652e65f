#!/usr/bin/env python3
"""clang's thread-safety analysis over Vigil's sources (make test runs it).

Reads BUILD/compile_commands.json, and for every translation unit under src/
and tests/ (not the runtime adapters, whose libtorch/OpenCV headers clang
would parse for minutes and which hold no locks) runs clang++ -fsyntax-only
with the same flags plus -Wthread-safety -Werror: a member a mutex guards
that is touched without it, a REQUIRES that a caller does not meet, a lock
taken twice, all fail. Syntax-only: no code is generated, so this costs a
fraction of a build.

  check-thread-safety.py BUILD_DIR [JOBS]
"""
import concurrent.futures
import json
import os
import shlex
import shutil
import subprocess
import sys

SKIP = ("onnx_backend.cc", "torch_backend.cc", "torch_train.cc", "xgboost_backend.cc", "xgboost_train.cc", ".pb.cc")


def clang():
    for name in ("clang++-14", "clang++"):
        if shutil.which(name):
            return name
    return None


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    jobs = int(sys.argv[2]) if len(sys.argv) > 2 else os.cpu_count() or 2
    cxx = clang()
    if not cxx:
        print("clang++ not found: apt-get install clang-14 (scripts/install-deps.sh does)")
        return 1
    with open(os.path.join(build, "compile_commands.json")) as f:
        entries = json.load(f)
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
    units = []
    for e in entries:
        path = e["file"]
        if not path.startswith(os.path.join(root, "src")) and not path.startswith(os.path.join(root, "tests")):
            continue
        if path.endswith(SKIP):
            continue
        args = shlex.split(e["command"])[1:]
        out = []
        skip_next = False
        for a in args:
            if skip_next:
                skip_next = False
                continue
            if a in ("-o", "-c"):
                skip_next = a == "-o"
                continue
            if a.startswith(("-fsanitize", "-fno-sanitize")):
                continue
            out.append(a)
        units.append((path, [cxx, "-fsyntax-only", "-Wthread-safety", "-Werror=thread-safety",
                             "-Wno-unknown-warning-option", "-Wno-ambiguous-reversed-operator"] + out))

    def run(unit):
        path, cmd = unit
        r = subprocess.run(cmd, cwd=build, capture_output=True, text=True)
        return path, r.returncode, r.stderr

    failed = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        for path, code, err in pool.map(run, units):
            if code != 0:
                failed += 1
                print(f"--- {os.path.relpath(path, root)}\n{err}")
    print(f"thread-safety analysis: {len(units)} translation units, {failed} with errors")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
