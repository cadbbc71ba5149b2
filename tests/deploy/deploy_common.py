"""Shared helpers of the deployment tests (tests/deploy/*_test.py).

They read the repository's deployment files (Dockerfile, deploy/) and ask the real binaries of a
build tree what they accept: flags from `internimage-server --help`, the effective configuration
from `--print_config`, the metric names from a running server's /metrics. Nothing here starts a
long-lived process; deploy_prometheus_test.py does that itself.

Needs Debian's python3 with PyYAML (python3-yaml, a dependency of python3-torch, which
scripts/setup.sh installs for the tests).
"""

import argparse
import glob
import os
import re
import subprocess
import sys
import tempfile

import yaml


def parse_args():
    """Returns (source_dir, binary_dir, remaining argv for unittest) from the command line."""
    parser = argparse.ArgumentParser(add_help=False)
    here = os.path.dirname(os.path.abspath(__file__))
    parser.add_argument("--source-dir", default=os.path.normpath(os.path.join(here, "..", "..")))
    parser.add_argument("--binary-dir", default=None)
    args, rest = parser.parse_known_args()
    binary_dir = args.binary_dir or os.path.join(args.source_dir, "build")
    return os.path.abspath(args.source_dir), os.path.abspath(binary_dir), [sys.argv[0]] + rest


class Repo:
    """Paths of the repository and of the build tree under test."""

    def __init__(self, source_dir, binary_dir):
        self.source_dir = source_dir
        self.binary_dir = binary_dir

    def path(self, *parts):
        return os.path.join(self.source_dir, *parts)

    def binary(self, name):
        path = os.path.join(self.binary_dir, "bin", name)
        if not os.access(path, os.X_OK):
            raise AssertionError(f"{path} is missing: build the tree first (scripts/build.sh)")
        return path

    def read(self, *parts):
        with open(self.path(*parts), encoding="utf-8") as f:
            return f.read()

    def yaml_documents(self, *parts):
        """Returns the non-empty YAML documents of a file."""
        return [d for d in yaml.safe_load_all(self.read(*parts)) if d is not None]

    def yaml(self, *parts):
        documents = self.yaml_documents(*parts)
        if len(documents) != 1:
            raise AssertionError(f"{os.path.join(*parts)}: expected one YAML document, "
                                 f"got {len(documents)}")
        return documents[0]


def run(cmd, timeout=120, **kwargs):
    """Runs cmd and returns the CompletedProcess (text output, never raises on exit status)."""
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)


# ---- the server's flags and configuration ----------------------------------------------------

def flag_name(arg):
    """Returns the abseil name of a command-line flag: "--drain-grace=30s" -> "drain_grace"."""
    if not arg.startswith("-"):
        raise AssertionError(f"{arg!r} is not a flag (the server takes flags only)")
    return arg.lstrip("-").split("=", 1)[0].replace("-", "_")


def flag_value(args, name):
    """Returns the value of flag `name` (abseil spelling) in args, or None."""
    for arg in args:
        if flag_name(arg) == name and "=" in arg:
            return arg.split("=", 1)[1]
    return None


def server_flags(repo):
    """Returns the set of flags `internimage-server --help` documents (underscore spelling)."""
    result = run([repo.binary("internimage-server"), "--help"])
    # CLI11 help lists each option as "  --name TYPE   description" under its dashed name; the
    # underscore spelling is accepted too, and the deploy files are compared in that spelling.
    flags = {name.replace("-", "_")
             for name in re.findall(r"^\s+(?:-\w,)?--([a-z0-9-]+)\b", result.stdout, flags=re.M)}
    if "config" not in flags or "drain_grace" not in flags:
        raise AssertionError("could not read the flags from internimage-server --help:\n"
                             + result.stdout + result.stderr)
    return flags


def parse_text_proto(text):
    """Parses protobuf text format as TextFormat prints it (one field per line) into a dict of
    field name -> list of values (scalars as str, int, float or bool; messages as dicts)."""
    root = {}
    stack = [root]
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line == "}":
            stack.pop()
            if not stack:
                raise AssertionError(f"line {number}: unbalanced '}}'")
            continue
        block = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)\s*\{", line)
        if block:
            child = {}
            stack[-1].setdefault(block.group(1), []).append(child)
            stack.append(child)
            continue
        field = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)\s*:\s*(.+)", line)
        if not field:
            raise AssertionError(f"line {number}: cannot parse {raw!r}")
        value = field.group(2)
        if value.startswith('"'):
            value = value[1:-1].encode().decode("unicode_escape")
        elif value in ("true", "false"):
            value = value == "true"
        elif re.fullmatch(r"-?\d+", value):
            value = int(value)
        elif re.fullmatch(r"-?[\d.]+(e-?\d+)?", value):
            value = float(value)
        stack[-1].setdefault(field.group(1), []).append(value)
    if len(stack) != 1:
        raise AssertionError("unbalanced '{' in text proto")
    return root


def one(message, field, default=None):
    """Returns the single value of `field` in a parsed message (default when absent)."""
    values = message.get(field, [])
    if not values:
        return default
    if len(values) != 1:
        raise AssertionError(f"field {field} is repeated")
    return values[0]


def effective_config(repo, config_text, args=()):
    """Returns the configuration internimage-server would run with (defaults and flags applied)
    for a configuration file holding config_text, as a parsed text proto. Fails with the server's
    own message when it rejects the configuration."""
    with tempfile.TemporaryDirectory(prefix="iis-deploy-config-") as tmp:
        path = os.path.join(tmp, "server.pbtxt")
        with open(path, "w", encoding="utf-8") as f:
            f.write(config_text)
        args = [a for a in args if flag_name(a) != "config"]
        result = run([repo.binary("internimage-server"), f"--config={path}", *args,
                      "--print_config"])
    if result.returncode != 0:
        raise AssertionError("internimage-server rejected the configuration "
                             f"(exit {result.returncode}): {result.stderr.strip()}\n--- config:\n"
                             + config_text)
    return parse_text_proto(result.stdout)


def listen_port(config):
    """Returns the gRPC port of a parsed effective configuration."""
    return int(one(config, "listen_address").rsplit(":", 1)[1])


def parse_duration_seconds(text):
    """Parses a duration as abseil flags write it ("30s", "1m30s", "500ms") into seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
    parts = re.findall(r"([\d.]+)(h|ms|us|ns|m|s)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise AssertionError(f"cannot parse the duration {text!r}")
    return sum(float(n) * units[u] for n, u in parts)


# ---- PromQL ------------------------------------------------------------------------------------

# Words of PromQL that look like metric names: functions, aggregations, keywords.
_PROMQL_WORDS = {
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
    "count_values", "group", "by", "without", "on", "ignoring", "group_left", "group_right",
    "and", "or", "unless", "offset", "bool", "inf", "nan", "le",
}


def promql_metric_names(expr):
    """Returns the metric names (and recording-rule names) an expression reads. Label names,
    label values, functions, keywords and template variables ($job, <<.Series>>) are left out."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)              # label values
    expr = re.sub(r"\{[^{}]*\}", "{}", expr)                       # label matchers
    expr = re.sub(r"\[[^\]]*\]", "[]", expr)                       # range durations
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"\$\{?\w+\}?|<<[^>]*>>", "", expr)             # dashboard / adapter templates
    names = set()
    for match in re.finditer(r"(?<![\w:.])([A-Za-z_:][A-Za-z0-9_:]*)(?![\w:])", expr):
        name = match.group(1)
        rest = expr[match.end():].lstrip()
        if rest.startswith("("):            # a function call
            continue
        if name.lower() in _PROMQL_WORDS or re.fullmatch(r"\d+[smhdwy]?", name):
            continue
        names.add(name)
    return names


def recording_rules(repo):
    """Returns {record name: expr} of deploy/prometheus/rules/*.yml."""
    records = {}
    for path in sorted(glob.glob(repo.path("deploy", "prometheus", "rules", "*.yml"))):
        with open(path, encoding="utf-8") as f:
            for group in yaml.safe_load(f)["groups"]:
                for rule in group["rules"]:
                    if "record" in rule:
                        records[rule["record"]] = rule["expr"]
    return records


def deployment_queries(repo):
    """Returns [(where, PromQL expression)] of every query the deployment files make: the rules,
    the Grafana dashboard (panels and template variables) and the Prometheus adapter."""
    import json
    queries = []
    for path in sorted(glob.glob(repo.path("deploy", "prometheus", "rules", "*.yml"))):
        with open(path, encoding="utf-8") as f:
            for group in yaml.safe_load(f)["groups"]:
                for rule in group["rules"]:
                    name = rule.get("record") or rule.get("alert")
                    queries.append((f"{os.path.basename(path)}: {name}", rule["expr"]))
    for path in sorted(glob.glob(repo.path("deploy", "grafana", "dashboards", "*.json"))):
        with open(path, encoding="utf-8") as f:
            dashboard = json.load(f)
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                queries.append((f"{os.path.basename(path)}: panel {panel['title']!r}",
                                target["expr"]))
        for variable in dashboard["templating"]["list"]:
            if variable["type"] == "query":
                query = variable["query"]["query"]
                inner = re.fullmatch(r"label_values\((.*),\s*\w+\)", query)
                queries.append((f"{os.path.basename(path)}: variable ${variable['name']}",
                                inner.group(1) if inner else query))
    adapter = repo.yaml("deploy", "kubernetes", "prometheus-adapter", "values.yaml")
    for rule in adapter["rules"]["custom"]:
        queries.append(("prometheus-adapter seriesQuery", rule["seriesQuery"]))
        queries.append(("prometheus-adapter metricsQuery", rule["metricsQuery"]))
    return queries


def error_code_sets(text):
    """Returns the distinct sets of codes matched by code=~"..." in text."""
    return {frozenset(m.split("|")) for m in re.findall(r'code=~"([A-Z_|]+)"', text)}
