#!/usr/bin/env python3
"""Puts the libraries of the pip-installed LibTorch (the torch wheel and its nvidia-* CUDA wheels)
that the GPU runtime image needs into PREFIX/lib, next to libiis_ops.so.

  deploy/docker/torch-libs.py --site-packages DIR --runtime-root DIR --prefix PREFIX

  --site-packages  where `pip install -r torch-requirements.txt` put torch/ and nvidia/
  --runtime-root   the root file system of the runtime base image (the GPU image's build stage
                   bind-mounts nvidia/cuda:...-cudnn-runtime there), read-only
  --prefix         the install prefix of deploy/docker/install.sh (/opt/internimage)

1. torch/lib/*.so* is copied, except libtorch_python.so (Python bindings; needs libpython).
2. Starting from every ELF file in PREFIX/bin and PREFIX/lib, the libraries they need (DT_NEEDED,
   recursively) that an nvidia-* wheel provides are looked up in the runtime root (its
   ld.so.conf directories and the default ones). A wheel's libraries are shipped when the runtime
   root has no library of that soname, or has an older one (the version in the real file name,
   e.g. libcudnn.so.9.14.0, against the wheel's version, e.g. nvidia-cudnn-cu13 9.19.0.56). When
   one library of a wheel is shipped, all of that wheel's shared libraries are (cuDNN, NVRTC and
   NVSHMEM load some of their own libraries with dlopen, which DT_NEEDED does not show).
3. A table says, for every wheel library needed, where the runtime image will load it from.

The torch libraries carry DT_RPATH entries with $ORIGIN, so a library shipped next to them is
found before any copy in the runtime image's loader cache.
Libraries that no wheel provides (glibc, libstdc++, gRPC, OpenCV, the driver's libcuda.so.1) are
left to deploy/docker/runtime-packages.sh and the runtime image. Exit status: 0 done, 1 failure.
"""

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys

DEFAULT_DIRS = ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64",
                "/lib", "/usr/lib"]


def dynamic_section(path):
    """(soname or None, [needed]) of an ELF file, from readelf."""
    out = subprocess.run(["readelf", "-d", "-W", path], capture_output=True, text=True)
    if out.returncode != 0:
        return None, []
    soname = re.search(r"\(SONAME\)\s+Library soname: \[([^\]]+)\]", out.stdout)
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out.stdout)
    return (soname.group(1) if soname else None), needed


def is_elf(path):
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def version_tuple(text):
    return tuple(int(x) for x in re.findall(r"\d+", text))


def wheel_libraries(site_packages):
    """{soname: (package, version, [all .so files of that package])} of the nvidia-* wheels,
    from their dist-info RECORD files."""
    provided = {}
    for dist_info in sorted(glob.glob(os.path.join(site_packages, "nvidia_*.dist-info"))):
        match = re.fullmatch(r"(.+)-([^-]+)\.dist-info", os.path.basename(dist_info))
        package, version = match.group(1), match.group(2)
        with open(os.path.join(dist_info, "RECORD"), encoding="utf-8") as f:
            files = [line.split(",", 1)[0] for line in f]
        libraries = [os.path.join(site_packages, p) for p in files
                     if re.search(r"/lib/[^/]+\.so(\.|$)", p)]
        libraries = [p for p in libraries if is_elf(p)]
        for path in libraries:
            soname = dynamic_section(path)[0] or os.path.basename(path)
            provided[soname] = (package, version, libraries)
    return provided


def loader_dirs(root):
    """Directories the runtime root's dynamic loader searches (ld.so.conf, then the defaults)."""
    dirs = []

    def read_conf(path):
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except OSError:
            return
        for line in lines:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            if line.startswith("include "):
                pattern = line.split(None, 1)[1]
                if not pattern.startswith("/"):
                    pattern = os.path.join("/etc", pattern)
                for conf in sorted(glob.glob(root + pattern)):
                    read_conf(conf)
            elif line.startswith("/"):
                dirs.append(line)

    read_conf(os.path.join(root, "etc/ld.so.conf"))
    return dirs + DEFAULT_DIRS


def runtime_copy(root, dirs, soname):
    """(path inside the root, version tuple or ()) of the runtime root's library `soname`."""
    for directory in dirs:
        candidate = root + os.path.join(directory, soname)
        if os.path.lexists(candidate):
            real = candidate
            for _ in range(16):  # follow symbolic links inside the root
                if not os.path.islink(real):
                    break
                target = os.readlink(real)
                real = (root + target) if target.startswith("/") else \
                    os.path.join(os.path.dirname(real), target)
            if not os.path.exists(real):
                continue
            # libcudnn.so.9 -> libcudnn.so.9.14.0: (9, 14, 0). A real name that adds nothing to
            # the soname tells no version.
            name = os.path.basename(real)
            match = re.fullmatch(r".+?\.so\.(\d+(?:\.\d+)+)", name)
            if name == soname or not match:
                return os.path.join(directory, soname), ()
            return os.path.join(directory, soname), version_tuple(match.group(1))
    return None, ()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--site-packages", required=True)
    parser.add_argument("--runtime-root", required=True)
    parser.add_argument("--prefix", required=True)
    args = parser.parse_args()
    root = os.path.abspath(args.runtime_root).rstrip("/")
    lib_dir = os.path.join(args.prefix, "lib")
    torch_lib = os.path.join(args.site_packages, "torch", "lib")
    if not os.path.isdir(torch_lib):
        sys.exit(f"torch-libs: {torch_lib} does not exist")
    if not os.path.isdir(root + "/etc"):
        sys.exit(f"torch-libs: {args.runtime_root} is not a root file system")
    os.makedirs(lib_dir, exist_ok=True)

    copied = 0
    for path in sorted(glob.glob(os.path.join(torch_lib, "*.so*"))):
        if os.path.basename(path) == "libtorch_python.so":
            continue
        shutil.copy2(path, lib_dir, follow_symlinks=False)
        copied += 1
    print(f"torch-libs: {copied} libraries of {torch_lib} -> {lib_dir}")

    provided = wheel_libraries(args.site_packages)
    if not provided:
        sys.exit(f"torch-libs: no nvidia-* wheel libraries in {args.site_packages}")
    dirs = loader_dirs(root)
    todo = [p for d in (os.path.join(args.prefix, "bin"), lib_dir)
            for p in sorted(glob.glob(os.path.join(d, "*"))) if is_elf(p)]
    seen_files, decided, shipped_packages, rows = set(), {}, set(), []
    while todo:
        path = todo.pop()
        if path in seen_files:
            continue
        seen_files.add(path)
        for soname in dynamic_section(path)[1]:
            if soname in decided or soname not in provided:
                continue
            package, version, libraries = provided[soname]
            where, base_version = runtime_copy(root, dirs, soname)
            wheel_version = version_tuple(version)
            if where is None:
                ship, why = True, "not in the runtime image"
            elif not base_version:
                ship, why = True, f"runtime image's {where} has no version in its file name"
            elif base_version < wheel_version[:len(base_version)]:
                ship, why = True, (f"runtime image's {where} is "
                                   f"{'.'.join(map(str, base_version))}, older")
            else:
                ship, why = False, (f"runtime image's {where} "
                                    f"({'.'.join(map(str, base_version))})")
            decided[soname] = ship
            rows.append((soname, f"{package} {version}", "wheel -> " + lib_dir if ship else "image",
                         why))
            if ship and package not in shipped_packages:
                shipped_packages.add(package)
                for library in libraries:
                    shutil.copy2(library, lib_dir)
                    todo.append(os.path.join(lib_dir, os.path.basename(library)))
    width = max(len(r[0]) for r in rows) if rows else 0
    print("torch-libs: CUDA libraries the binaries and LibTorch need, and where they load from:")
    for soname, package, source, why in sorted(rows):
        print(f"  {soname:<{width}}  {package:<32} {source:<28} {why}")
    print(f"torch-libs: shipped the libraries of {len(shipped_packages)} wheels: "
          f"{', '.join(sorted(shipped_packages)) or 'none'}")


if __name__ == "__main__":
    main()
