#!/usr/bin/env python3
"""Line and branch coverage of src/ by every CTest suite, from gcov's JSON
output (gcovr 5.2, Debian 12's, cannot merge the two builds of src/).

    scripts/coverage.py [BUILD_DIR] [--files] [--missed]
                                            (default: build-coverage)

Builds the library and tests with --coverage -fprofile-update=atomic at
-O0 in BUILD_DIR (and HOT functions not forced inline: see future.c), runs ctest, and reports src/ coverage of the plain
objects (with the src/ headers compiled into the white-box suites, such
as deque.h into test_deque), of the fault-injection objects
(tests/test_faults.c), and of the two merged (a line or branch counts when either build ran it; a line whose
branches differ between the builds takes the fault build's). --files adds
branch coverage per file; --missed lists, merged, each line never run and
each line with a branch never taken (file:line taken/branches).
"""
import collections
import glob
import gzip
import json
import os
import shutil
import subprocess
import sys


def gcov(objdir, out):
    """{(file, line): ran} and {(file, line): [taken per branch]}"""
    shutil.rmtree(out, ignore_errors=True)  # no figures of an earlier run
    os.makedirs(out)
    for gcda in glob.glob(os.path.join(objdir, "*.gcda")):
        subprocess.run(["gcov", "-j", "-b", "-o", objdir, gcda], cwd=out,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=True)
    lines, branches = {}, {}
    for f in glob.glob(os.path.join(out, "*.gcov.json.gz")):
        for fi in json.load(gzip.open(f))["files"]:
            name = fi["file"]
            if "/src/" not in name:
                continue
            name = name[name.rindex("/src/") + 1:]
            for ln in fi["lines"]:
                merge(lines, branches, (name, ln["line_number"]),
                      ln["count"] > 0,
                      [b["count"] > 0 for b in ln.get("branches", [])])
    return lines, branches


def merge(lines, branches, key, ran, taken):
    lines[key] = lines.get(key, False) or ran
    if taken:
        old = branches.get(key)
        branches[key] = (taken if old is None or len(old) != len(taken)
                         else [a or b for a, b in zip(old, taken)])


def report(name, lines, branches):
    lh, lt = sum(lines.values()), len(lines)
    bh = sum(sum(b) for b in branches.values())
    bt = sum(len(b) for b in branches.values())
    print(f"{name:14} lines {lh}/{lt} = {100 * lh / lt:.1f}%   "
          f"branches {bh}/{bt} = {100 * bh / bt:.1f}%")


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    build = os.path.abspath(args[0] if args else "build-coverage")
    subprocess.run(["cmake", "-S", root, "-B", build,
                    "-DCMAKE_BUILD_TYPE=Debug",
                    "-DCMAKE_C_FLAGS=--coverage -fprofile-update=atomic -DHOT=static",
                    "-DFUT_BUILD_BENCH=OFF", "-DFUT_BUILD_EXAMPLES=OFF"],
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", build, "-j4"], check=True,
                   stdout=subprocess.DEVNULL)
    for gcda in glob.glob(os.path.join(build, "**", "*.gcda"), recursive=True):
        os.remove(gcda)  # counts of this run only
    # exports: the coverage runtime adds symbols; not a coverage question
    subprocess.run(["ctest", "--test-dir", build, "-j2", "-E", "exports"],
                   check=True, stdout=subprocess.DEVNULL)
    out = os.path.join(build, "gcov")
    plain = gcov(os.path.join(build, "CMakeFiles", "fut_objects.dir", "src"),
                 os.path.join(out, "plain"))
    fault = gcov(os.path.join(build, "tests", "CMakeFiles", "fut_faulty.dir",
                              "__", "src"), os.path.join(out, "fault"))
    # The white-box suites compile src/ headers (deque.h's inline
    # functions) into themselves: their runs of that code count too.
    for obj in sorted(glob.glob(os.path.join(build, "tests", "CMakeFiles",
                                             "test_*.dir"))):
        name = os.path.basename(obj)[:-4]
        lines, branches = gcov(obj, os.path.join(out, name))
        for key, ran in lines.items():
            merge(*plain, key, ran, branches.get(key, []))
    report("plain build", *plain)
    report("fault build", *fault)
    lines, branches = dict(plain[0]), dict(plain[1])
    for key, ran in fault[0].items():
        merge(lines, branches, key, ran, fault[1].get(key, []))
    report("both", lines, branches)
    if "--files" in sys.argv:
        per = collections.defaultdict(lambda: [0, 0])
        for (f, _), b in branches.items():
            per[f][0] += sum(b)
            per[f][1] += len(b)
        for f, (h, t) in sorted(per.items()):
            print(f"  {f:18} branches {h}/{t} = {100 * h / t:.1f}%")
    if "--missed" in sys.argv:
        for key in sorted(set(lines) | set(branches)):
            b = branches.get(key, [])
            if not lines.get(key, True):
                print(f"  {key[0]}:{key[1]} never run")
            elif b and not all(b):
                print(f"  {key[0]}:{key[1]} {sum(b)}/{len(b)}")


if __name__ == "__main__":
    main()
