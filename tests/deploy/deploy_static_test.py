#!/usr/bin/python3
"""Checks that the Dockerfile and deploy/ refer to what the server really has.

Ports, flags, paths and defaults in the Dockerfile, the Kubernetes manifests, docker-compose and
the Prometheus/Grafana files are compared with the real binaries of a build tree
(`internimage-server --help`, `--print_config`), so they cannot drift silently. promtool checks
the Prometheus configuration and rules, and runs the rules' unit tests. The Dockerfile's install
and package-listing scripts run on the local build. No container or cluster is involved: images
are not built and manifests are not applied here.

  /usr/bin/python3 tests/deploy/deploy_static_test.py [--source-dir DIR] [--binary-dir BUILD]
"""

import fnmatch
import json
import os
import re
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploy_common as dc  # noqa: E402

REPO = None  # set in main()


# ---- Dockerfile --------------------------------------------------------------------------------

class Dockerfile:
    """The instructions of a Dockerfile, grouped by stage."""

    def __init__(self, text):
        self.args = {}      # global ARG defaults (before the first FROM)
        self.stages = []    # [{"name", "base", "instructions": [(KEYWORD, text)]}]
        logical = []
        current = ""
        for line in text.splitlines():
            stripped = line.strip()
            if not current and (not stripped or stripped.startswith("#")):
                continue
            if current and stripped.startswith("#"):
                continue  # a comment inside a continued instruction
            if stripped.endswith("\\"):
                current += stripped[:-1] + " "
                continue
            logical.append(current + stripped)
            current = ""
        for instruction in logical:
            keyword, _, rest = instruction.partition(" ")
            keyword = keyword.upper()
            rest = rest.strip()
            if keyword == "FROM":
                match = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", rest, flags=re.I)
                self.stages.append({"name": match.group(2), "base": self.expand(match.group(1)),
                                    "instructions": []})
            elif not self.stages and keyword == "ARG":
                name, _, value = rest.partition("=")
                self.args[name] = value
            else:
                self.stages[-1]["instructions"].append((keyword, rest))

    def expand(self, text):
        return re.sub(r"\$\{(\w+)\}|\$(\w+)",
                      lambda m: self.args.get(m.group(1) or m.group(2), m.group(0)), text)

    def stage(self, name):
        for stage in self.stages:
            if stage["name"] == name:
                return stage
        raise AssertionError(f"the Dockerfile has no stage named {name!r}")

    @staticmethod
    def values(stage, keyword):
        return [rest for kw, rest in stage["instructions"] if kw == keyword]

    @staticmethod
    def stage_args(stage):
        args = {}
        for rest in Dockerfile.values(stage, "ARG"):
            name, _, value = rest.partition("=")
            args[name] = value
        return args


def runtime_settings(stage):
    """Returns the runtime instructions of a stage (from the user set-up on), for comparison."""
    keep = ("USER", "EXPOSE", "HEALTHCHECK", "ENTRYPOINT", "CMD", "STOPSIGNAL", "ENV")
    return [(kw, rest) for kw, rest in stage["instructions"] if kw in keep]


def normalize(name):
    """PEP 503 project name normalisation."""
    return re.sub(r"[-_.]+", "-", name).lower()


def torch_requirements():
    """Parses deploy/docker/torch-requirements.txt: {normalized name: {"version", "hashes",
    "wheel"}}. Every entry must be `name==version` with --hash=sha256 options only (a requirement
    file for `pip install --require-hashes`); "wheel" is the file name in the comment above it."""
    lines = REPO.read("deploy", "docker", "torch-requirements.txt").splitlines()
    entries, wheel, current = {}, None, ""
    for line in lines + [""]:
        stripped = line.strip()
        if not current and stripped.startswith("#"):
            comment = stripped[1:].strip()
            wheel = comment if re.fullmatch(r"\S+\.whl", comment) else wheel
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        entry = (current + stripped).strip()
        current = ""
        if not entry:
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)"
                             r"((?:\s+--hash=sha256:[0-9a-f]{64})+)", entry)
        if not match:
            raise AssertionError(f"torch-requirements.txt: {entry!r} is not name==version with "
                                 "--hash=sha256:... options")
        name = normalize(match.group(1))
        if name in entries:
            raise AssertionError(f"torch-requirements.txt: {name} appears twice")
        entries[name] = {"version": match.group(2),
                         "hashes": re.findall(r"sha256:([0-9a-f]{64})", match.group(3)),
                         "wheel": wheel}
        wheel = None
    return entries


class DockerfileTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dockerfile = Dockerfile(REPO.read("Dockerfile"))
        cls.flags = dc.server_flags(REPO)
        cls.defaults = dc.effective_config(REPO, "")

    def test_stages_and_pinned_base_images(self):
        names = [s["name"] for s in self.dockerfile.stages]
        self.assertEqual(names, ["cpu-build", "cpu", "gpu-runtime-base", "gpu-build", "gpu"],
                         "stages (the last one, gpu, is what a plain `docker build` makes)")
        for stage in self.dockerfile.stages:
            base = stage["base"]
            self.assertRegex(base, r"^[\w./-]+:[\w.-]+$", f"stage {stage['name']}: {base}")
            self.assertNotRegex(base, r":latest$", f"stage {stage['name']} is not pinned")
        devel = self.dockerfile.stage("gpu-build")["base"]
        runtime = self.dockerfile.stage("gpu")["base"]
        match = re.fullmatch(r"nvidia/cuda:(\d+\.\d+\.\d+)-cudnn-devel-ubuntu24\.04", devel)
        self.assertIsNotNone(match, f"GPU build base {devel}")
        self.assertEqual(runtime, f"nvidia/cuda:{match.group(1)}-cudnn-runtime-ubuntu24.04",
                         "the GPU runtime base must match the build base")
        self.assertEqual(self.dockerfile.stage("gpu-runtime-base")["base"], runtime)
        for name in ("cpu-build", "cpu"):
            self.assertRegex(self.dockerfile.stage(name)["base"], r"^debian:12(\.\d+)?-slim$")

    def test_libtorch_comes_from_the_hash_pinned_wheel(self):
        stage = self.dockerfile.stage("gpu-build")
        requirements = torch_requirements()
        self.assertRegex(requirements["torch"]["version"], r"^2\.\d+\.\d+$")
        # The wheels' CUDA is the base images' CUDA (cuda-toolkit pins one CUDA release).
        cuda = re.search(r"nvidia/cuda:(\d+\.\d+\.\d+)-", stage["base"]).group(1)
        self.assertIn("cuda-toolkit", requirements, "torch's CUDA wheels are not pinned")
        self.assertEqual(requirements["cuda-toolkit"]["version"], cuda,
                         "the base images' CUDA release must be the one the torch wheel pins")
        self.assertEqual(requirements["nvidia-cuda-runtime"]["version"].split(".")[:2],
                         cuda.split(".")[:2])
        # The requirement file travels into the stage, and the one pip install uses it with hashes.
        copies = [c.split() for c in Dockerfile.values(stage, "COPY")]
        (target,) = [c[-1] for c in copies if c[0] == "deploy/docker/torch-requirements.txt"]
        runs = Dockerfile.values(stage, "RUN")
        (pip,) = [r for r in runs if "pip install" in r]
        self.assertEqual(pip.count("pip install"), 1, pip)
        self.assertIn(f"-r {target}", pip)
        self.assertIn("--require-hashes", pip)
        self.assertIn("--only-binary=:all:", pip)
        self.assertNotRegex(pip, r"--(extra-)?index-url|--find-links|--trusted-host|--no-deps")
        # No other download: no curl/wget/ADD of a URL and no other pip anywhere.
        all_runs = [r for s in self.dockerfile.stages for r in Dockerfile.values(s, "RUN")]
        self.assertEqual([r for r in all_runs if re.search(r"\b(curl|wget)\b", r)], [])
        self.assertEqual([r for r in all_runs if re.search(r"\bpip3?\b", r)], [pip])
        adds = [a for s in self.dockerfile.stages for a in Dockerfile.values(s, "ADD")]
        self.assertEqual(adds, [])
        # CMake finds the wheel's LibTorch: its CMake package and torch/ (find_library).
        (build,) = [r for r in runs if "cmake -S" in r]
        self.assertIn("torch.utils.cmake_prefix_path", build)
        self.assertIn("os.path.dirname(torch.__file__)", build)
        prefix = re.search(r'-DCMAKE_PREFIX_PATH="([^"]+)"', build).group(1).split(";")
        self.assertEqual(len(prefix), 2, prefix)
        self.assertIn('-DCMAKE_CUDA_ARCHITECTURES="80;90"', build)
        self.assertIn("-DIIS_CUDA=ON", build)
        self.assertIn('grep -q "LibTorch CUDA ON"', build)
        envs = " ".join(Dockerfile.values(stage, "ENV"))
        self.assertIn('TORCH_CUDA_ARCH_LIST="8.0 9.0"', envs)
        # The runtime libraries: torch-libs.py against the runtime base stage's file system.
        self.assertRegex(build, r"--mount=type=bind,from=gpu-runtime-base,target=(\S+) ")
        runtime_root = re.search(r"--mount=type=bind,from=gpu-runtime-base,target=(\S+) ",
                                 build).group(1)
        self.assertIn("deploy/docker/torch-libs.py --site-packages", build)
        self.assertIn(f"--runtime-root {runtime_root}", build)
        self.assertIn("--prefix /opt/internimage", build)
        self.assertFalse(os.path.exists(REPO.path("deploy", "docker", "cuda_compat.cmake")))
        for name in ("cpu-build", "gpu-build"):
            self.assertIn("-DIIS_BUILD_TESTS=OFF",
                          " ".join(Dockerfile.values(self.dockerfile.stage(name), "RUN")))

    def test_torch_requirements_pin_every_package_with_a_hash(self):
        text = REPO.read("deploy", "docker", "torch-requirements.txt")
        requirements = torch_requirements()
        self.assertGreater(len(requirements), 10, "torch and its dependencies (nvidia-*, ...)")
        # One wheel per package: the file name above each entry names a CPython 3.12 (or pure
        # Python) wheel for manylinux x86_64 (or any platform) of exactly that version.
        for name, requirement in requirements.items():
            self.assertEqual(len(requirement["hashes"]), 1, f"{name}: one wheel, one hash")
            wheel = requirement["wheel"]
            self.assertIsNotNone(wheel, f"{name}: no '# <wheel file>' comment above it")
            parts = wheel[:-len(".whl")].split("-")
            self.assertEqual(normalize(parts[0]), name, wheel)
            self.assertEqual(parts[1], requirement["version"], wheel)
            python, abi, platform = parts[-3:]
            self.assertTrue({"cp312", "py3"} & set(python.split(".")), wheel)
            self.assertTrue({"cp312", "abi3", "none"} & set(abi.split(".")), wheel)
            self.assertTrue(any(p == "any" or re.fullmatch(r"manylinux\w*_x86_64", p)
                                for p in platform.split(".")), wheel)
        self.assertIn("nvidia-cudnn-cu13", requirements)
        # scripts/check-libtorch2.sh reads the torch==X line the same way.
        joined = text.replace("\\\n", " ")
        torch_lines = [l.split("#", 1)[0].strip() for l in joined.splitlines()
                       if re.match(r"torch\s*==", l)]
        self.assertEqual(len(torch_lines), 1, torch_lines)
        self.assertRegex(torch_lines[0], r"^torch==\S+ +--hash=sha256:[0-9a-f]{64}$")

    def test_cpu_image_installs_through_setup_script(self):
        build_runs = Dockerfile.values(self.dockerfile.stage("cpu-build"), "RUN")
        self.assertTrue(any(re.match(r"scripts/setup\.sh( |&|$)", r) for r in build_runs),
                        build_runs)
        self.assertTrue(any("scripts/build.sh" in r for r in build_runs), build_runs)
        runtime_runs = Dockerfile.values(self.dockerfile.stage("cpu"), "RUN")
        self.assertTrue(any("setup.sh --runtime" in r for r in runtime_runs), runtime_runs)

    def test_runtime_stages_match_the_server(self):
        cpu, gpu = self.dockerfile.stage("cpu"), self.dockerfile.stage("gpu")
        self.assertEqual(runtime_settings(cpu), runtime_settings(gpu),
                         "the two runtime stages must be set up alike")
        grpc_port = dc.listen_port(self.defaults)
        metrics_port = dc.one(self.defaults, "metrics_port")
        for stage in (cpu, gpu):
            exposed = {int(p.split("/")[0]) for e in Dockerfile.values(stage, "EXPOSE")
                       for p in e.split()}
            self.assertEqual(exposed, {grpc_port, metrics_port})
            (user,) = Dockerfile.values(stage, "USER")
            self.assertRegex(user, r"^[1-9]\d*:[1-9]\d*$", "a numeric non-root user")
            (healthcheck,) = Dockerfile.values(stage, "HEALTHCHECK")
            command = json.loads(healthcheck.split(" CMD ", 1)[1])
            self.assertEqual(os.path.basename(command[0]), "internimage-client")
            self.assertEqual(command[1], "health")
            target = command[command.index("--target") + 1]
            self.assertEqual(int(target.rsplit(":", 1)[1]), grpc_port)
            (entrypoint,) = Dockerfile.values(stage, "ENTRYPOINT")
            entrypoint = json.loads(entrypoint)
            self.assertEqual(entrypoint, ["/opt/internimage/bin/internimage-server"])
            self.assertEqual(os.path.dirname(command[0]), os.path.dirname(entrypoint[0]))
            (cmd,) = Dockerfile.values(stage, "CMD")
            cmd = json.loads(cmd)
            for arg in cmd:
                self.assertIn(dc.flag_name(arg), self.flags, f"CMD flag {arg}")
            config_path = dc.flag_value(cmd, "config")
            copies = [c.split() for c in Dockerfile.values(stage, "COPY")]
            sources = [c[-2] for c in copies if c[-1] == config_path]
            self.assertEqual(sources, ["deploy/config/server.pbtxt"],
                             f"{config_path} must come from deploy/config/server.pbtxt")
        for name in ("cpu-build", "gpu-build"):
            runs = " ".join(Dockerfile.values(self.dockerfile.stage(name), "RUN"))
            self.assertRegex(runs, r"deploy/docker/install\.sh .*/opt/internimage\b")

    def test_baked_in_config_serves_the_defaults(self):
        baked = dc.effective_config(REPO, REPO.read("deploy", "config", "server.pbtxt"))
        self.assertEqual(baked, self.defaults)

    def test_dockerignore_keeps_what_the_dockerfile_copies(self):
        patterns = [p.strip() for p in REPO.read(".dockerignore").splitlines()
                    if p.strip() and not p.startswith("#")]

        def ignored(path):
            return any(fnmatch.fnmatch(path, p.replace("**/", "*")) or
                       fnmatch.fnmatch(path.split("/")[0], p) for p in patterns)

        for stage in self.dockerfile.stages:
            for copy in Dockerfile.values(stage, "COPY"):
                words = copy.split()
                if any(w.startswith("--from") for w in words) or words[0] == ".":
                    continue
                for source in words[:-1]:
                    self.assertTrue(os.path.exists(REPO.path(source)), source)
                    self.assertFalse(ignored(source), f".dockerignore drops {source}")
        for path in ("build/bin/internimage-server", "build-deploy/CMakeCache.txt", ".git/HEAD",
                     "weights/internimage_t_1k_224.pth"):
            self.assertTrue(ignored(path), f"{path} would be sent to the Docker daemon")


class InstallTest(unittest.TestCase):
    """The Dockerfile's install and package-listing steps, run on the local build."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="iis-deploy-install-")
        cls.prefix = os.path.join(cls.tmp, "opt", "internimage")
        cls.install = dc.run([REPO.path("deploy", "docker", "install.sh"), REPO.binary_dir,
                              cls.prefix], timeout=300)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def installed(self):
        self.assertEqual(self.install.returncode, 0, self.install.stderr)
        return [os.path.join(self.prefix, "bin", b) for b in
                ("internimage-server", "internimage-client", "internimage-loadgen")] + [
                    os.path.join(self.prefix, "lib", "libiis_ops.so")]

    def test_installed_tree_runs_without_the_build_tree(self):
        files = self.installed()
        for path in files:
            ldd = dc.run(["ldd", path])
            self.assertNotIn("not found", ldd.stdout, f"{path}:\n{ldd.stdout}")
            self.assertNotIn(REPO.binary_dir, ldd.stdout,
                             f"{path} still loads libraries from the build tree")
        for path in files[:3]:
            runpath = dc.run(["objdump", "-p", path]).stdout
            self.assertRegex(runpath, r"RUNPATH\s+\$ORIGIN/\.\./lib", path)
        server = dc.run([files[0], f"--config={REPO.path('deploy', 'config', 'server.pbtxt')}",
                         "--print_config"])
        self.assertEqual(server.returncode, 0, server.stderr)
        client = dc.run([files[1], "--help"])
        self.assertEqual(client.returncode, 0, client.stderr)
        self.assertIn("health", client.stdout)

    def test_runtime_packages_of_setup_script_cover_the_binaries(self):
        files = self.installed()
        listed = dc.run([REPO.path("deploy", "docker", "runtime-packages.sh"), "--skip",
                         os.path.join(self.prefix, "lib"), *files])
        self.assertEqual(listed.returncode, 0, listed.stderr)
        needed = set(listed.stdout.split())
        self.assertIn("libgrpc++1.51", needed, "the listing misses the binaries' own libraries")
        script = REPO.read("scripts", "setup.sh")
        runtime = re.search(r"runtime_packages=\(([^)]*)\)", script).group(1).split()
        closure = dependency_closure(runtime)
        missing = sorted(needed - closure)
        self.assertEqual(missing, [], "scripts/setup.sh --runtime does not install the packages "
                         f"of these libraries (nor anything that depends on them): {missing}")

    def test_runtime_packages_rejects_unpackaged_libraries(self):
        self.installed()
        # Without --skip, libiis_ops.so (not from any package) must be reported, not ignored.
        listed = dc.run([REPO.path("deploy", "docker", "runtime-packages.sh"),
                         os.path.join(self.prefix, "bin", "internimage-server")])
        self.assertEqual(listed.returncode, 1)
        self.assertIn("libiis_ops.so", listed.stderr)


class TorchLibsTest(unittest.TestCase):
    """deploy/docker/torch-libs.py (the GPU image's choice of CUDA libraries) on a made-up wheel
    installation and runtime root: small shared libraries built here with the sonames and
    DT_NEEDED entries of the real ones."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="iis-deploy-torchlibs-")
        cls.site = os.path.join(cls.tmp, "site-packages")
        cls.root = os.path.join(cls.tmp, "runtime-root")
        cls.prefix = os.path.join(cls.tmp, "opt", "internimage")
        source = os.path.join(cls.tmp, "f.c")
        with open(source, "w", encoding="utf-8") as f:
            f.write("int iis_f(void) { return 1; }\n")

        def library(path, soname, *needed, search=None):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            command = ["cc", "-shared", "-fPIC", "-o", path, source, f"-Wl,-soname,{soname}",
                       "-Wl,--no-as-needed"]
            if search:
                command += [f"-L{search}"]
            command += [f"-l:{n}" for n in needed]
            result = dc.run(command)
            if result.returncode != 0:
                raise AssertionError(result.stderr)

        def wheel(package, version, *paths):
            dist_info = os.path.join(cls.site, f"{package}-{version}.dist-info")
            os.makedirs(dist_info)
            with open(os.path.join(dist_info, "RECORD"), "w", encoding="utf-8") as f:
                f.writelines(f"{p},sha256=x,1\n" for p in paths)

        cudnn = os.path.join(cls.site, "nvidia", "cudnn", "lib")
        cu13 = os.path.join(cls.site, "nvidia", "cu13", "lib")
        library(os.path.join(cudnn, "libcudnn_ops.so.9"), "libcudnn_ops.so.9")
        library(os.path.join(cudnn, "libcudnn.so.9"), "libcudnn.so.9")
        library(os.path.join(cu13, "libcublas.so.13"), "libcublas.so.13")
        library(os.path.join(cu13, "libcupti.so.13"), "libcupti.so.13")
        wheel("nvidia_cudnn_cu13", "9.19.0.56", "nvidia/cudnn/lib/libcudnn.so.9",
              "nvidia/cudnn/lib/libcudnn_ops.so.9", "nvidia/cudnn/__init__.py")
        wheel("nvidia_cublas", "13.1.0.3", "nvidia/cu13/lib/libcublas.so.13")
        wheel("nvidia_cuda_cupti", "13.0.85", "nvidia/cu13/lib/libcupti.so.13")
        torch_lib = os.path.join(cls.site, "torch", "lib")
        for name in ("libcudnn.so.9", "libcublas.so.13", "libcupti.so.13"):
            shutil.copy(os.path.join(cudnn if "cudnn" in name else cu13, name), cls.tmp)
        library(os.path.join(torch_lib, "libtorch_cuda.so"), "libtorch_cuda.so",
                "libcudnn.so.9", "libcublas.so.13", "libcupti.so.13", search=cls.tmp)
        library(os.path.join(torch_lib, "libtorch_python.so"), "libtorch_python.so")
        # The runtime root: cuBLAS of the same release (loader directory from ld.so.conf.d), an
        # older cuDNN, no CUPTI.
        cuda = os.path.join(cls.root, "usr", "local", "cuda-13.0", "lib64")
        gnu = os.path.join(cls.root, "usr", "lib", "x86_64-linux-gnu")
        os.makedirs(os.path.join(cls.root, "etc", "ld.so.conf.d"))
        os.makedirs(cuda)
        os.makedirs(gnu)
        with open(os.path.join(cls.root, "etc", "ld.so.conf"), "w", encoding="utf-8") as f:
            f.write("include /etc/ld.so.conf.d/*.conf\n")
        with open(os.path.join(cls.root, "etc", "ld.so.conf.d", "cuda.conf"), "w",
                  encoding="utf-8") as f:
            f.write("/usr/local/cuda-13.0/lib64\n")
        for directory, real, link in ((cuda, "libcublas.so.13.1.0.3", "libcublas.so.13"),
                                      (gnu, "libcudnn.so.9.14.0", "libcudnn.so.9")):
            open(os.path.join(directory, real), "wb").close()
            os.symlink(real, os.path.join(directory, link))
        os.makedirs(os.path.join(cls.prefix, "bin"))
        cls.result = dc.run([sys.executable, REPO.path("deploy", "docker", "torch-libs.py"),
                             "--site-packages", cls.site, "--runtime-root", cls.root,
                             "--prefix", cls.prefix])

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_ships_what_the_runtime_root_lacks_or_has_older(self):
        self.assertEqual(self.result.returncode, 0, self.result.stdout + self.result.stderr)
        shipped = sorted(os.listdir(os.path.join(self.prefix, "lib")))
        # torch/lib without the Python bindings; all of cuDNN (older in the image, and its
        # dlopen-ed libraries with it); CUPTI (missing); not cuBLAS (the same version is there).
        self.assertEqual(shipped, ["libcudnn.so.9", "libcudnn_ops.so.9", "libcupti.so.13",
                                   "libtorch_cuda.so"], self.result.stdout)
        self.assertRegex(self.result.stdout, r"libcublas\.so\.13 .* image .*13\.1\.0\.3")
        self.assertRegex(self.result.stdout, r"libcudnn\.so\.9 .* 9\.14\.0, older")


class ScriptsTest(unittest.TestCase):
    def test_deploy_scripts_parse(self):
        scripts = [os.path.join(d, f) for d, _, files in os.walk(REPO.path("deploy"))
                   for f in files if f.endswith(".sh")]
        self.assertIn(REPO.path("deploy", "docker", "install.sh"), scripts)
        for script in scripts:
            self.assertTrue(os.access(script, os.X_OK), f"{script} is not executable")
            result = dc.run(["bash", "-n", script])
            self.assertEqual(result.returncode, 0, f"{script}: {result.stderr}")
        for script in ("pin-torch.py", "torch-libs.py"):
            path = REPO.path("deploy", "docker", script)
            self.assertTrue(os.access(path, os.X_OK), f"{path} is not executable")
            result = dc.run([sys.executable, path, "--help"])
            self.assertEqual(result.returncode, 0, f"{path}: {result.stderr}")


def dependency_closure(packages):
    """Returns the packages that installing `packages` installs (Depends and Pre-Depends,
    recursively), from dpkg's database of installed packages."""
    status = dc.run(["dpkg-query", "-W", "-f",
                     "${Package}\t${Status}\t${Provides}\t${Pre-Depends}, ${Depends}\n"])
    installed, providers = {}, {}
    for line in status.stdout.splitlines():
        name, state, provides, depends = line.split("\t")
        if not state.endswith("ok installed"):
            continue
        installed[name] = depends
        for virtual in provides.split(","):
            virtual = virtual.split("(")[0].strip()
            if virtual:
                providers.setdefault(virtual, set()).add(name)
    closure, todo = set(), list(packages)
    while todo:
        name = todo.pop()
        candidates = {name} | providers.get(name, set())
        for package in candidates & installed.keys():
            if package in closure:
                continue
            closure.add(package)
            for clause in installed[package].split(","):
                # "a (>= 1) | b": any installed alternative satisfies it; follow all of them.
                for alternative in clause.split("|"):
                    dependency = alternative.split("(")[0].split(":")[0].strip()
                    if dependency:
                        todo.append(dependency)
    return closure


# ---- Kubernetes ----------------------------------------------------------------------------------

class KubernetesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.flags = dc.server_flags(REPO)
        cls.objects = {}
        kustomization = REPO.yaml("deploy", "kubernetes", "kustomization.yaml")
        cls.resources = kustomization["resources"]
        for name in cls.resources + ["weights-loader.yaml"]:
            for document in REPO.yaml_documents("deploy", "kubernetes", name):
                cls.objects[(document["kind"], document["metadata"]["name"])] = document
        cls.deployment = cls.objects[("Deployment", "internimage-serving")]
        cls.pod = cls.deployment["spec"]["template"]
        (cls.container,) = cls.pod["spec"]["containers"]
        cls.configmap = cls.objects[("ConfigMap", "internimage-serving-config")]

    def config_text_with_local_weights(self, tmp):
        """Returns the ConfigMap's server.pbtxt with /models/... pointing at empty files in tmp
        (the server checks that weight files are readable)."""
        mounts = {m["name"]: m["mountPath"] for m in self.container["volumeMounts"]}
        weights_dir = mounts["weights"]
        text = self.configmap["data"]["server.pbtxt"]
        for path in re.findall(r'weights:\s*"([^"]+)"', text):
            self.assertTrue(path.startswith(weights_dir + "/"),
                            f"weights {path} are outside the weights volume ({weights_dir})")
            local = os.path.join(tmp, os.path.relpath(path, weights_dir))
            open(local, "wb").close()
            text = text.replace(f'"{path}"', f'"{local}"')
        return text

    def effective(self):
        with tempfile.TemporaryDirectory(prefix="iis-deploy-weights-") as tmp:
            return dc.effective_config(REPO, self.config_text_with_local_weights(tmp),
                                       self.container["args"])

    def test_manifests_are_complete(self):
        for name in self.resources:
            self.assertTrue(os.path.exists(REPO.path("deploy", "kubernetes", name)), name)
        for (kind, name), document in self.objects.items():
            self.assertIn("apiVersion", document, f"{kind}/{name}")
        kinds = {kind for kind, _ in self.objects}
        for kind in ("ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler",
                     "PersistentVolumeClaim"):
            self.assertIn(kind, kinds)

    def test_container_uses_real_flags_ports_and_paths(self):
        args = self.container["args"]
        for arg in args:
            self.assertIn(dc.flag_name(arg), self.flags, f"container arg {arg}")
        config = self.effective()
        ports = {p["name"]: p["containerPort"] for p in self.container["ports"]}
        self.assertEqual(ports, {"grpc": dc.listen_port(config),
                                 "metrics": dc.one(config, "metrics_port")})
        mounts = {m["name"]: m for m in self.container["volumeMounts"]}
        volumes = {v["name"]: v for v in self.pod["spec"]["volumes"]}
        config_path = dc.flag_value(args, "config")
        self.assertEqual(os.path.dirname(config_path), mounts["config"]["mountPath"])
        self.assertEqual(volumes["config"]["configMap"]["name"], self.configmap["metadata"]["name"])
        self.assertIn(os.path.basename(config_path), self.configmap["data"])
        claim = volumes["weights"]["persistentVolumeClaim"]["claimName"]
        self.assertIn(("PersistentVolumeClaim", claim), self.objects)
        self.assertTrue(mounts["weights"]["readOnly"])
        for model in config["models"]:
            self.assertTrue(dc.one(model, "weights"), f"{dc.one(model, 'name')} has no weights")
            self.assertEqual(dc.one(model, "device"), "cuda")
        limits = self.container["resources"]["limits"]
        self.assertGreaterEqual(int(limits["nvidia.com/gpu"]), 1)
        cpu = float(self.container["resources"]["requests"]["cpu"])
        self.assertLessEqual(dc.one(config, "worker_threads"), cpu,
                             "worker_threads above the CPU request oversubscribes the pod")

    def test_probes_use_grpc_health_on_the_server_port(self):
        grpc_port = dc.listen_port(self.effective())
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            spec = self.container[probe]
            self.assertEqual(spec["grpc"]["port"], grpc_port, probe)
            self.assertNotIn("service", spec["grpc"], f"{probe}: the whole server's health")
        startup = self.container["startupProbe"]
        self.assertGreaterEqual(startup["periodSeconds"] * startup["failureThreshold"], 120,
                                "the startup probe must allow for loading the models")

    def test_termination_grace_covers_pre_stop_and_drain(self):
        config = self.effective()
        drain = dc.one(config, "drain_grace_period_ms") / 1000
        flag = dc.flag_value(self.container["args"], "drain_grace")
        self.assertIsNotNone(flag, "set --drain-grace next to terminationGracePeriodSeconds")
        self.assertEqual(dc.parse_duration_seconds(flag), drain)
        command = self.container["lifecycle"]["preStop"]["exec"]["command"]
        self.assertEqual(os.path.basename(command[0]), "sleep")
        pre_stop = float(command[1])
        grace = self.pod["spec"]["terminationGracePeriodSeconds"]
        self.assertGreaterEqual(grace, pre_stop + drain + 1,
                                "Kubernetes would kill the server during its drain")
        self.assertLessEqual(grace, pre_stop + drain + 15, "the grace period is far from the drain")

    def test_pod_runs_as_the_image_user(self):
        dockerfile = Dockerfile(REPO.read("Dockerfile"))
        (user,) = Dockerfile.values(dockerfile.stage("gpu"), "USER")
        uid, gid = (int(x) for x in user.split(":"))
        security = self.pod["spec"]["securityContext"]
        self.assertTrue(security["runAsNonRoot"])
        self.assertEqual((security["runAsUser"], security["runAsGroup"]), (uid, gid))

    def test_services_select_the_pods(self):
        labels = self.pod["metadata"]["labels"]
        port_names = {p["name"]: p["containerPort"] for p in self.container["ports"]}
        services = {name: o for (kind, name), o in self.objects.items() if kind == "Service"}
        self.assertEqual(set(services), {"internimage-serving", "internimage-serving-headless"})
        for name, service in services.items():
            selector = service["spec"]["selector"]
            self.assertTrue(selector.items() <= labels.items(), f"{name} selects no pod")
            for port in service["spec"]["ports"]:
                self.assertIn(port["targetPort"], port_names, f"{name}: {port}")
                self.assertEqual(port["port"], port_names[port["targetPort"]], f"{name}: {port}")
        self.assertEqual(services["internimage-serving-headless"]["spec"]["clusterIP"], "None")
        self.assertNotEqual(services["internimage-serving"]["spec"].get("clusterIP"), "None")
        match_labels = self.deployment["spec"]["selector"]["matchLabels"]
        self.assertEqual(match_labels.items() - labels.items(), set())

    def test_one_namespace_and_network_policies(self):
        (namespace,) = [name for kind, name in self.objects if kind == "Namespace"]
        for (kind, name), document in self.objects.items():
            if kind != "Namespace":
                self.assertEqual(document["metadata"].get("namespace"), namespace,
                                 f"{kind}/{name} is not in the namespace {namespace}")
        policies = {name: o for (kind, name), o in self.objects.items() if kind == "NetworkPolicy"}
        pods = {"internimage-serving": self.pod,
                "internimage-weights-loader": self.objects[("Pod", "internimage-weights-loader")]}
        for name, pod in pods.items():
            labels = pod["metadata"]["labels"]
            selecting = [p for p in policies.values()
                         if p["spec"]["podSelector"]["matchLabels"].items() <= labels.items()]
            self.assertEqual(len(selecting), 1, f"{name}: one NetworkPolicy must select its pods")
            self.assertFalse(pod["spec"].get("automountServiceAccountToken", True),
                             f"{name} mounts a service account token it never uses")
        (policy,) = [p for p in policies.values()
                     if p["spec"]["podSelector"]["matchLabels"].items()
                     <= self.pod["metadata"]["labels"].items()]
        allowed = {port["port"] for rule in policy["spec"]["ingress"] for port in rule["ports"]}
        self.assertEqual(allowed, {p["name"] for p in self.container["ports"]},
                         "the server's NetworkPolicy must admit exactly its container ports")

    def test_hpa_scales_on_metrics_the_adapter_serves(self):
        hpa = self.objects[("HorizontalPodAutoscaler", "internimage-serving")]
        target = hpa["spec"]["scaleTargetRef"]
        self.assertEqual((target["kind"], target["name"]), ("Deployment", "internimage-serving"))
        adapter = REPO.yaml("deploy", "kubernetes", "prometheus-adapter", "values.yaml")
        served = {}
        for rule in adapter["rules"]["custom"]:
            series = dc.promql_metric_names(rule["seriesQuery"])
            self.assertEqual(len(series), 1, rule["seriesQuery"])
            self.assertRegex(rule["seriesQuery"], r'namespace!="",pod!=""')
            self.assertEqual(set(rule["resources"]["overrides"]), {"namespace", "pod"})
            (name,) = series
            self.assertRegex(name, rule["name"]["matches"])
            served[rule["name"]["as"]] = name
        used = [m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"]]
        self.assertTrue(used)
        for metric in hpa["spec"]["metrics"]:
            self.assertEqual(metric["type"], "Pods")
            self.assertIn(metric["pods"]["metric"]["name"], served)
        self.assertIn("iis_queue_depth", served.values())

    def test_queue_saturation_is_read_against_the_exported_capacity(self):
        # The rule divides by what each server exports, so models may set any max_queue_size.
        rules = REPO.yaml("deploy", "prometheus", "rules", "internimage.rules.yml")
        exprs = {r.get("record"): r["expr"] for g in rules["groups"] for r in g["rules"] if "record" in r}
        expr = exprs["instance_model:iis_queue_saturation:ratio"]
        self.assertIn("iis_queue_depth", expr)
        self.assertIn("iis_queue_capacity", expr)

    def test_kubernetes_scrape_config_selects_the_metrics_port(self):
        config = REPO.yaml("deploy", "prometheus", "prometheus-kubernetes.yml")
        (job,) = config["scrape_configs"]
        compose_job = REPO.yaml("deploy", "prometheus", "prometheus.yml")["scrape_configs"][0]
        self.assertEqual(job["job_name"], compose_job["job_name"])
        keeps = {tuple(r["source_labels"]): r["regex"] for r in job["relabel_configs"]
                 if r.get("action") == "keep"}
        app = self.pod["metadata"]["labels"]["app.kubernetes.io/name"]
        app_regex = keeps[("__meta_kubernetes_pod_label_app_kubernetes_io_name",)]
        self.assertRegex(app, f"^(?:{app_regex})$")
        port_regex = keeps[("__meta_kubernetes_pod_container_port_name",)]
        self.assertRegex("metrics", f"^(?:{port_regex})$")
        targets = {r.get("target_label") for r in job["relabel_configs"]}
        self.assertTrue({"namespace", "pod"} <= targets, "the Prometheus adapter needs both")


# ---- Prometheus, Grafana, compose -----------------------------------------------------------

class PrometheusFilesTest(unittest.TestCase):
    def promtool(self, *args):
        result = dc.run(["promtool", *args], cwd=REPO.path("deploy", "prometheus"))
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        return result

    def test_config_and_rules_are_valid(self):
        self.promtool("check", "config", "prometheus.yml")
        rules = sorted(os.path.join("rules", f)
                       for f in os.listdir(REPO.path("deploy", "prometheus", "rules")))
        self.assertTrue(rules)
        self.promtool("check", "rules", *rules)

    def test_rules_unit_tests_pass(self):
        result = self.promtool("test", "rules", "tests/rules_test.yml")
        self.assertIn("SUCCESS", result.stdout)

    def test_kubernetes_config_is_valid(self):
        result = dc.run(["promtool", "check", "config", "prometheus-kubernetes.yml"],
                        cwd=REPO.path("deploy", "prometheus"))
        if "kubernetes_sd_configs not found" in result.stdout + result.stderr:
            # Debian's Prometheus is built without Kubernetes discovery: check everything else,
            # with the discovery block replaced by a file-based one.
            config = REPO.yaml("deploy", "prometheus", "prometheus-kubernetes.yml")
            for job in config["scrape_configs"]:
                self.assertEqual(job.pop("kubernetes_sd_configs"), [{"role": "pod"}])
                job["file_sd_configs"] = [{"files": ["targets.json"]}]
            with tempfile.TemporaryDirectory(prefix="iis-deploy-k8s-") as tmp:
                shutil.copytree(REPO.path("deploy", "prometheus", "rules"),
                                os.path.join(tmp, "rules"))
                with open(os.path.join(tmp, "prometheus.yml"), "w", encoding="utf-8") as f:
                    dc.yaml.safe_dump(config, f)
                result = dc.run(["promtool", "check", "config", "prometheus.yml"], cwd=tmp)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_recording_rules_read_only_defined_names(self):
        records = dc.recording_rules(REPO)
        for where, expr in dc.deployment_queries(REPO):
            for name in dc.promql_metric_names(expr):
                if ":" in name:
                    self.assertIn(name, records, f"{where} reads an undefined recording rule")


class GrafanaAndComposeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.flags = dc.server_flags(REPO)
        cls.defaults = dc.effective_config(REPO, "")
        cls.compose = REPO.yaml("deploy", "docker-compose.yml")
        with open(REPO.path("deploy", "grafana", "dashboards", "internimage-serving.json"),
                  encoding="utf-8") as f:
            cls.dashboard = json.load(f)

    def test_dashboard_panels_and_variables(self):
        panels = self.dashboard["panels"]
        ids = [p["id"] for p in panels]
        self.assertEqual(len(ids), len(set(ids)), "panel ids must be unique")
        variables = {v["name"] for v in self.dashboard["templating"]["list"]}
        self.assertTrue({"datasource", "job", "instance", "model"} <= variables)
        exprs = []
        for panel in panels:
            if panel["type"] == "row":
                continue
            self.assertEqual(panel["datasource"]["uid"], "${datasource}", panel["title"])
            self.assertTrue(panel["targets"], panel["title"])
            for target in panel["targets"]:
                self.assertEqual(target["datasource"]["uid"], "${datasource}", panel["title"])
                exprs.append(target["expr"])
                for used in re.findall(r"\$(\w+)", target["expr"]):
                    self.assertTrue(used in variables or used.startswith("__"),
                                    f"{panel['title']}: ${used} is not a dashboard variable")
        text = "\n".join(exprs)
        stages = [f"iis_{s}_duration_seconds_bucket"
                  for s in ("request", "queue", "preprocess", "inference", "postprocess")]
        for family in stages + ["iis_requests_total", "iis_batch_size_bucket", "iis_queue_depth",
                                "iis_gpu_memory_allocated_bytes"]:
            self.assertIn(family, text, "the dashboard must show " + family)

    def test_dashboard_and_rules_count_the_same_errors(self):
        rules = REPO.read("deploy", "prometheus", "rules", "internimage.rules.yml")
        dashboard = "\n".join(t["expr"] for p in self.dashboard["panels"]
                              for t in p.get("targets", []))
        self.assertEqual(len(dc.error_code_sets(rules)), 1)
        self.assertEqual(dc.error_code_sets(rules), dc.error_code_sets(dashboard))

    def test_compose_server_matches_the_image(self):
        server = self.compose["services"]["server"]
        self.assertEqual(server["build"]["context"], "..")
        Dockerfile(REPO.read("Dockerfile")).stage(server["build"]["target"])
        gpu = REPO.yaml("deploy", "docker-compose.gpu.yml")["services"]["server"]
        Dockerfile(REPO.read("Dockerfile")).stage(gpu["build"]["target"])
        for arg in server["command"]:
            self.assertIn(dc.flag_name(arg), self.flags, f"compose command {arg}")
        ports = {int(p.split(":")[1]) for p in server["ports"]}
        self.assertEqual(ports, {dc.listen_port(self.defaults),
                                 dc.one(self.defaults, "metrics_port")})
        drain = dc.parse_duration_seconds(dc.flag_value(server["command"], "drain_grace"))
        self.assertGreater(dc.parse_duration_seconds(server["stop_grace_period"]), drain)
        mounts = {}
        for volume in server["volumes"]:
            # SOURCE:TARGET[:ro], SOURCE possibly ${VARIABLE:-default}.
            match = re.fullmatch(r"(\$\{\w+:-([^}]+)\}|[^:]+):([^:]+)(?::ro|:rw)?", volume)
            self.assertIsNotNone(match, volume)
            mounts[match.group(3)] = match.group(2) or match.group(1)
        config_source = mounts[dc.flag_value(server["command"], "config")]
        self.assertTrue(os.path.isfile(REPO.path("deploy", config_source)), config_source)
        self.assertTrue(os.path.isdir(REPO.path("deploy", mounts["/models"])))

    def test_compose_prometheus_scrapes_the_server(self):
        prometheus = self.compose["services"]["prometheus"]
        mounts = dict(v.split(":")[0:2] for v in prometheus["volumes"])
        config_file = next(a.split("=", 1)[1] for a in prometheus["command"]
                           if a.startswith("--config.file="))
        mounted_dir = mounts["./prometheus"]
        self.assertEqual(os.path.dirname(config_file), mounted_dir)
        config = REPO.yaml("deploy", "prometheus", os.path.basename(config_file))
        (job,) = config["scrape_configs"]
        (static,) = job["static_configs"]
        (target,) = static["targets"]
        host, port = target.rsplit(":", 1)
        self.assertEqual(host, "server")
        self.assertEqual(int(port), dc.one(self.defaults, "metrics_port"))
        self.assertEqual(job.get("metrics_path", "/metrics"), "/metrics")

    def test_compose_grafana_provisioning(self):
        grafana = self.compose["services"]["grafana"]
        mounts = dict(v.split(":")[0:2] for v in grafana["volumes"])
        provisioning = mounts["./grafana/provisioning"]
        self.assertEqual(provisioning, "/etc/grafana/provisioning")
        provider = REPO.yaml("deploy", "grafana", "provisioning", "dashboards",
                             "internimage-serving.yml")["providers"][0]
        self.assertEqual(provider["options"]["path"], mounts["./grafana/dashboards"])
        home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
        home = os.path.relpath(home, provider["options"]["path"])
        self.assertTrue(os.path.isfile(REPO.path("deploy", "grafana", "dashboards", home)), home)
        (source,) = REPO.yaml("deploy", "grafana", "provisioning", "datasources",
                              "prometheus.yml")["datasources"]
        match = re.fullmatch(r"http://([\w-]+):(\d+)", source["url"])
        self.assertEqual(match.group(1), "prometheus")
        self.assertIn("prometheus", self.compose["services"])
        self.assertEqual(int(match.group(2)), 9090)
        self.assertEqual(source["type"], "prometheus")


class ReadmeTest(unittest.TestCase):
    def test_deployment_section_names_existing_files(self):
        readme = REPO.read("README.md")
        self.assertIn("\n## Deployment\n", readme)
        section = readme.split("\n## Deployment\n", 1)[1]
        paths = set(re.findall(r"\b((?:deploy|scripts)/[\w./-]*\w)", section))
        self.assertTrue(paths)
        for path in paths:
            self.assertTrue(os.path.exists(REPO.path(path)), f"README names {path}")


def main():
    global REPO
    source_dir, binary_dir, argv = dc.parse_args()
    REPO = dc.Repo(source_dir, binary_dir)
    if shutil.which("promtool") is None:
        sys.exit("promtool is missing: install Debian's prometheus package (scripts/setup.sh)")
    unittest.main(argv=argv, verbosity=2)


if __name__ == "__main__":
    main()
