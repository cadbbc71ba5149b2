#!/usr/bin/env python3
"""Writes deploy/docker/torch-requirements.txt: torch==VERSION and every package it pulls in, each
pinned to one version and to the sha256 of the one wheel that Python 3.12 on Linux x86_64 (the
Python of the GPU image's Ubuntu 24.04 base) installs, then proves the file by installing from it.

  deploy/docker/pin-torch.py [--torch 2.11.0] [--python python3.12] [--output FILE] [--no-check]

1. pip (in a Python 3.12 virtual environment under .cache/pin-torch/) resolves torch==VERSION
   with --dry-run --report: the packages and versions pip would install, and the file of each.
2. Each file's sha256 is read from PyPI's simple JSON API (PEP 691) and compared with the one
   pip's report carries; the file must be a cp312 or py3 wheel for manylinux x86_64 or any
   platform. Nothing is guessed: a missing or differing hash stops the script.
3. The file is written (sorted by name; the wheel's file name in a comment above each entry).
4. Unless --no-check: a fresh virtual environment installs it with
   `pip install --require-hashes --only-binary=:all: -r FILE` (all-or-nothing: a package
   missing from the file or a hash that differs fails), and torch's version, CUDA version,
   C++ ABI and CMake prefix are printed.

Step 1 and 4 download the wheels (about 3 GB; pip's cache makes step 4 local). Needs network
access to PyPI. Exit status: 0 written and checked, 1 failure, 2 bad usage.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request

SIMPLE_API = "https://pypi.org/simple/{name}/"
WANTED_PYTHON = (3, 12)
REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def normalize(name):
    """PEP 503 name normalisation."""
    return re.sub(r"[-_.]+", "-", name).lower()


def run(cmd, **kwargs):
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, **kwargs)


def make_venv(python, path):
    if os.path.isdir(path):
        shutil.rmtree(path)
    run([python, "-m", "venv", path])
    venv_python = os.path.join(path, "bin", "python")
    version = subprocess.run([venv_python, "-c", "import sys; print(*sys.version_info[:2])"],
                             check=True, capture_output=True, text=True).stdout.split()
    if tuple(int(v) for v in version) != WANTED_PYTHON:
        sys.exit(f"pin-torch: {python} is Python {'.'.join(version)}, not "
                 f"{'.'.join(map(str, WANTED_PYTHON))} (the GPU image's): pass --python")
    return venv_python


def index_files(name):
    """{filename: sha256} of every file PyPI lists for a project."""
    request = urllib.request.Request(SIMPLE_API.format(name=normalize(name)),
                                     headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        listing = json.load(response)
    return {f["filename"]: f.get("hashes", {}).get("sha256") for f in listing["files"]}


def wheel_fits(filename):
    """True for a wheel that CPython 3.12 on manylinux x86_64 installs."""
    match = re.fullmatch(r"[^-]+-[^-]+(?:-\d[^-]*)?-([^-]+)-([^-]+)-([^-]+)\.whl", filename)
    if not match:
        return False
    pythons, abis, platforms = (part.split(".") for part in match.groups())
    python_ok = any(p in ("cp312", "py3", "py312") for p in pythons)
    abi_ok = any(a in ("cp312", "abi3", "none") for a in abis)
    platform_ok = any(p == "any" or re.fullmatch(r"manylinux(?:1|2010|2014|_\d+_\d+)_x86_64", p)
                      for p in platforms)
    return python_ok and abi_ok and platform_ok


def resolve(venv_python, torch_version, work_dir):
    report_path = os.path.join(work_dir, "report.json")
    run([venv_python, "-m", "pip", "install", "--disable-pip-version-check", "--quiet",
         "--dry-run", "--ignore-installed", "--only-binary=:all:", "--report", report_path,
         f"torch=={torch_version}"])
    with open(report_path, encoding="utf-8") as f:
        report = json.load(f)
    pins = []
    for item in report["install"]:
        name = item["metadata"]["name"]
        version = item["metadata"]["version"]
        url = item["download_info"]["url"]
        filename = url.rsplit("/", 1)[1].split("#", 1)[0]
        archive = item["download_info"].get("archive_info", {})
        reported = archive.get("hashes", {}).get("sha256")
        if not reported and archive.get("hash", "").startswith("sha256="):
            reported = archive["hash"].split("=", 1)[1]
        pins.append((normalize(name), version, filename, reported))
    return sorted(pins)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--torch", default="2.11.0")
    parser.add_argument("--python", default="python3.12")
    parser.add_argument("--output", default=os.path.join(REPO, "deploy", "docker",
                                                         "torch-requirements.txt"))
    parser.add_argument("--no-check", action="store_true")
    args = parser.parse_args()

    work_dir = os.path.join(REPO, ".cache", "pin-torch")
    os.makedirs(work_dir, exist_ok=True)
    resolver = make_venv(args.python, os.path.join(work_dir, "venv-resolve"))
    pins = resolve(resolver, args.torch, work_dir)

    lines = []
    for name, version, filename, reported in pins:
        if not wheel_fits(filename):
            sys.exit(f"pin-torch: {filename} is not a cp312/py3 manylinux x86_64 wheel")
        listed = index_files(name).get(filename)
        if not listed:
            sys.exit(f"pin-torch: PyPI lists no sha256 for {filename}")
        if reported and reported != listed:
            sys.exit(f"pin-torch: {filename}: pip reported sha256 {reported}, PyPI lists {listed}")
        lines += [f"# {filename}", f"{name}=={version} \\", f"    --hash=sha256:{listed}"]
        print(f"{name}=={version}  {filename}  sha256 {listed}")
    if not any(name == "torch" for name, *_ in pins):
        sys.exit("pin-torch: pip's report has no torch")

    header = [
        f"# torch=={args.torch} (built for CUDA 13.0, C++11 ABI) and everything it installs, for",
        "# CPython 3.12 on Linux x86_64 (the python3 of the GPU image's Ubuntu 24.04 base). Each",
        "# package is pinned to one version and to the sha256 of its one wheel for that Python, as",
        "# PyPI's simple API lists it. The GPU image installs this file with",
        "#   pip install --require-hashes --only-binary=:all: -r torch-requirements.txt",
        "# and scripts/check-libtorch2.sh reads the torch version from the torch== line.",
        "# Written by deploy/docker/pin-torch.py; regenerate it rather than editing it by hand.",
        "",
    ]
    with open(args.output, "w", encoding="utf-8") as f:
        f.write("\n".join(header + lines) + "\n")
    print(f"pin-torch: wrote {len(pins)} packages to {args.output}")

    if args.no_check:
        return
    checker = make_venv(args.python, os.path.join(work_dir, "venv-check"))
    run([checker, "-m", "pip", "install", "--disable-pip-version-check", "--quiet",
         "--require-hashes", "--only-binary=:all:", "-r", args.output])
    run([checker, "-W", "ignore", "-c",
         "import torch, torch.utils; print('torch', torch.__version__, 'CUDA', torch.version.cuda,"
         " 'cxx11 ABI', torch._C._GLIBCXX_USE_CXX11_ABI, 'cmake', torch.utils.cmake_prefix_path)"])
    print(f"pin-torch: {args.output} installs with --require-hashes")


if __name__ == "__main__":
    main()
