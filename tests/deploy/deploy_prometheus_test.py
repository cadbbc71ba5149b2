#!/usr/bin/python3
"""A real Prometheus scrapes a real internimage-server with deploy/'s configuration.

The test starts internimage-server (one classification model, random weights, CPU, free ports on
127.0.0.1) and Debian's Prometheus on loopback with a temporary data directory, using
deploy/prometheus/prometheus.yml and its rules with only the scrape target and the intervals
rewritten (target: the server's metrics port; scrape and rule evaluation every second). It makes a
known number of calls with internimage-client and checks what Prometheus then holds: the request
counter, the latency histograms and the recording rules. It also runs `promtool check metrics` on
the server's /metrics, and checks that every metric the rules, the Grafana dashboard and the
Prometheus adapter query is one the server exports. Finally the server must drain and exit 0 on
SIGTERM.

  /usr/bin/python3 tests/deploy/deploy_prometheus_test.py [--source-dir DIR] [--binary-dir BUILD]
"""

import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploy_common as dc  # noqa: E402

REPO = None  # set in main()
MODEL = "internimage_t_1k_224"
JOB = "internimage-serving"
CLASSIFY_CALLS = 5     # successful Classify calls the test makes
NOT_FOUND_CALLS = 1    # calls for a model the server does not have
# Metric families a server exports only with a CUDA device; checked against metrics.cc instead.
GPU_FAMILIES = {"iis_gpu_memory_allocated_bytes", "iis_gpu_memory_reserved_bytes"}


def wait_for(what, predicate, timeout, interval=0.25):
    """Polls predicate() until it returns a true value, which is returned; fails after timeout."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except (OSError, ValueError, KeyError) as error:
            last_error = error
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}"
                         + (f" (last error: {last_error})" if last_error else ""))


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode()


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_png(path, width, height, seed):
    """Writes a small RGB PNG with a deterministic pattern (no imaging library needed)."""
    rows = b"".join(b"\x00" + bytes(((x * 7 + y * 3 + seed * 50 + c * 80) % 256)
                                    for x in range(width) for c in range(3))
                    for y in range(height))

    def chunk(kind, data):
        return (len(data).to_bytes(4, "big") + kind + data
                + zlib.crc32(kind + data).to_bytes(4, "big"))

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
                + chunk(b"IEND", b""))


class PrometheusScrapesServerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="iis-deploy-prometheus-")
        cls.server = cls.prometheus = None
        try:
            cls.start_server()
            cls.start_prometheus()
            cls.make_calls()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.prometheus is not None and cls.prometheus.poll() is None:
                cls.prometheus.terminate()
                try:
                    cls.prometheus.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    cls.prometheus.kill()
                    cls.prometheus.wait()
            if cls.server is not None and cls.server.poll() is None:
                # The drain the Dockerfile and the Kubernetes manifests rely on.
                cls.server.send_signal(signal.SIGTERM)
                try:
                    cls.server.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    cls.server.kill()
                    cls.server.wait()
                    raise AssertionError("internimage-server did not exit within 30 s of SIGTERM")
                if cls.server.returncode != 0:
                    raise AssertionError(f"internimage-server exited with {cls.server.returncode} "
                                         "after SIGTERM instead of draining:\n"
                                         + cls.read_log("server.log")[-3000:])
        finally:
            for handle in getattr(cls, "logs", []):
                handle.close()
            shutil.rmtree(cls.tmp, ignore_errors=True)

    # ---- set-up ----

    @classmethod
    def log(cls, name):
        handle = open(os.path.join(cls.tmp, name), "w+", encoding="utf-8")
        cls.logs = getattr(cls, "logs", []) + [handle]
        return handle

    @classmethod
    def read_log(cls, name):
        with open(os.path.join(cls.tmp, name), encoding="utf-8", errors="replace") as f:
            return f.read()

    @classmethod
    def start_server(cls):
        config = os.path.join(cls.tmp, "server.pbtxt")
        with open(config, "w", encoding="utf-8") as f:
            f.write(f'models {{ architecture: "{MODEL}" device: "cpu" warmup_iterations: -1 }}\n'
                    "drain_grace_period_ms: 5000\nworker_threads: 2\ncpu_inference_threads: 2\n")
        cls.server = subprocess.Popen(
            [REPO.binary("internimage-server"), f"--config={config}", "--host=127.0.0.1",
             "--port=0", "--metrics-port=0"],
            stdout=cls.log("server.out"), stderr=cls.log("server.log"))

        def serving():
            if cls.server.poll() is not None:
                raise AssertionError(f"internimage-server exited with {cls.server.returncode}:\n"
                                     + cls.read_log("server.log"))
            return re.search(r"serving on 127\.0\.0\.1:(\d+), metrics on :(\d+)/metrics",
                             cls.read_log("server.log"))

        match = wait_for("internimage-server to load its model", serving, timeout=240)
        cls.grpc_port, cls.metrics_port = int(match.group(1)), int(match.group(2))

    @classmethod
    def start_prometheus(cls):
        config = dc.yaml.safe_load(REPO.read("deploy", "prometheus", "prometheus.yml"))
        # The only rewrites: where the server is, and how often to scrape and evaluate.
        config["global"]["scrape_interval"] = "1s"
        config["global"]["evaluation_interval"] = "1s"
        (job,) = config["scrape_configs"]
        (static,) = job["static_configs"]
        static["targets"] = [f"127.0.0.1:{cls.metrics_port}"]
        shutil.copytree(REPO.path("deploy", "prometheus", "rules"), os.path.join(cls.tmp, "rules"))
        config_path = os.path.join(cls.tmp, "prometheus.yml")
        with open(config_path, "w", encoding="utf-8") as f:
            dc.yaml.safe_dump(config, f)
        for attempt in range(3):  # the free port may be taken before Prometheus binds it
            cls.prometheus_port = free_port()
            log_name = f"prometheus{attempt}.log"
            cls.prometheus = subprocess.Popen(
                ["prometheus", f"--config.file={config_path}",
                 f"--storage.tsdb.path={os.path.join(cls.tmp, 'data')}",
                 f"--web.listen-address=127.0.0.1:{cls.prometheus_port}", "--log.level=warn"],
                stdout=subprocess.DEVNULL, stderr=cls.log(log_name))

            def ready(log_name=log_name):
                if cls.prometheus.poll() is not None:
                    raise AssertionError(f"prometheus exited with {cls.prometheus.returncode}: "
                                         + cls.read_log(log_name)[-2000:])
                return "Ready" in http_get(cls.api_url("/-/ready"))

            try:
                wait_for("Prometheus to start", ready, timeout=60)
                break
            except AssertionError:
                if attempt == 2 or "address already in use" not in cls.read_log(log_name):
                    raise
        wait_for("Prometheus to scrape the server",
                 lambda: cls.query_value(f'up{{job="{JOB}"}}') == 1, timeout=30)

    @classmethod
    def make_calls(cls):
        images = []
        for i in range(CLASSIFY_CALLS):
            images.append(os.path.join(cls.tmp, f"image{i}.png"))
            write_png(images[-1], 48 + 8 * i, 40, i)
        client = REPO.binary("internimage-client")
        target = f"--target=127.0.0.1:{cls.grpc_port}"

        def classify(*args):
            started = time.monotonic()
            result = dc.run([client, "classify", target, *args], timeout=300)
            if result.returncode != 0:
                raise AssertionError(f"classify failed ({result.returncode}): {result.stderr}")
            return time.monotonic() - started

        # The request series appear with the first call: let Prometheus see them at 1 before the
        # other calls, so that rates over the scrapes are not 0.
        cls.client_seconds = classify(images[0])
        wait_for("Prometheus to see the first call",
                 lambda: cls.query_value(f'sum(iis_requests_total{{job="{JOB}"}})') == 1,
                 timeout=30)
        cls.client_seconds += classify(*images[1:])
        for _ in range(NOT_FOUND_CALLS):
            missing = dc.run([client, "classify", target, "--model=no_such_model", images[0]])
            if missing.returncode != 15:  # the client's exit code for NOT_FOUND
                raise AssertionError(f"expected NOT_FOUND (15), got {missing.returncode}: "
                                     f"{missing.stderr}")
        # Scrapes are 1 s apart: wait until one has seen every call.
        wait_for("Prometheus to see every call",
                 lambda: cls.query_value(f'sum(iis_requests_total{{job="{JOB}"}})')
                 == CLASSIFY_CALLS + NOT_FOUND_CALLS, timeout=30)

    # ---- Prometheus HTTP API ----

    @classmethod
    def api_url(cls, path, **params):
        query = ("?" + urllib.parse.urlencode(params)) if params else ""
        return f"http://127.0.0.1:{cls.prometheus_port}{path}{query}"

    @classmethod
    def query(cls, promql):
        """Returns the instant vector of promql as [(labels, value)]."""
        body = json.loads(http_get(cls.api_url("/api/v1/query", query=promql)))
        if body["status"] != "success":
            raise AssertionError(f"query {promql!r} failed: {body}")
        return [(r["metric"], float(r["value"][1])) for r in body["data"]["result"]]

    @classmethod
    def query_value(cls, promql):
        """Returns the value of a query that yields one sample, or None when it yields none."""
        result = cls.query(promql)
        if not result:
            return None
        if len(result) != 1:
            raise AssertionError(f"{promql!r} gave {len(result)} series: {result}")
        return result[0][1]

    def wait_for_query(self, promql, timeout=20):
        """Waits until promql yields a sample (e.g. a recording rule's first evaluation)."""
        def sample():
            value = self.query_value(promql)
            return None if value is None else [value]

        return wait_for(promql, sample, timeout=timeout)[0]

    # ---- tests ----

    def test_request_counter_counts_the_calls(self):
        series = self.query(f'iis_requests_total{{job="{JOB}", method="Classify"}}')
        by_code = {}
        for labels, value in series:
            self.assertEqual(labels["instance"], f"127.0.0.1:{self.metrics_port}")
            # An unknown model is counted with an empty model label, which Prometheus drops.
            by_code.setdefault(labels["code"], []).append((labels.get("model", ""), value))
        self.assertEqual(by_code.get("OK"), [(MODEL, CLASSIFY_CALLS)])
        self.assertEqual(by_code.get("NOT_FOUND"), [("", NOT_FOUND_CALLS)])
        self.assertEqual(set(by_code), {"OK", "NOT_FOUND"})

    def test_latency_histogram_holds_the_calls(self):
        selector = f'job="{JOB}", model="{MODEL}", method="Classify"'
        count = self.query_value(f"iis_request_duration_seconds_count{{{selector}}}")
        self.assertEqual(count, CLASSIFY_CALLS)
        total = self.query_value(f"iis_request_duration_seconds_sum{{{selector}}}")
        self.assertGreater(total, 0)
        self.assertLessEqual(total, self.client_seconds,
                             "server time beyond the client's wall time")
        buckets = sorted(((float(labels["le"]), value) for labels, value in
                          self.query(f"iis_request_duration_seconds_bucket{{{selector}}}")))
        self.assertEqual(buckets[-1], (math.inf, CLASSIFY_CALLS))
        counts = [value for _, value in buckets]
        self.assertEqual(counts, sorted(counts), "bucket counts must grow with le")
        p99 = self.query_value(
            f"histogram_quantile(0.99, sum by (le) "
            f"(increase(iis_request_duration_seconds_bucket{{{selector}}}[5m])))")
        # Interpolated inside the smallest bucket that holds every call, never beyond it.
        all_calls_le = min(le for le, value in buckets if value == CLASSIFY_CALLS)
        self.assertTrue(0 < p99 <= all_calls_le, (p99, buckets))

    def test_stage_histograms_hold_the_calls(self):
        selector = f'job="{JOB}", model="{MODEL}"'
        for stage in ("queue", "preprocess", "postprocess"):
            self.assertEqual(
                self.query_value(f"iis_{stage}_duration_seconds_count{{{selector}}}"),
                CLASSIFY_CALLS, stage)
        self.assertEqual(self.query_value(f"iis_batch_size_sum{{{selector}}}"), CLASSIFY_CALLS)
        batches = self.query_value(f"iis_batch_size_count{{{selector}}}")
        self.assertTrue(1 <= batches <= CLASSIFY_CALLS, batches)
        self.assertEqual(self.query_value(f"iis_inference_duration_seconds_count{{{selector}}}"),
                         batches)
        self.assertEqual(self.query_value(f"iis_queue_depth{{{selector}}}"), 0)
        self.assertEqual(
            self.query_value(f'iis_inflight_requests{{{selector}, method="Classify"}}'), 0)

    def test_recording_rules_evaluate_on_the_scraped_series(self):
        selector = f'job="{JOB}", model="{MODEL}", method="Classify"'
        rate = self.wait_for_query(f"model_method:iis_requests:rate1m{{{selector}}}")
        self.assertGreater(rate, 0)
        self.assertEqual(
            self.wait_for_query(f"model_method:iis_request_error_ratio:rate5m{{{selector}}}"), 0,
            "NOT_FOUND is the caller's error, not the server's")
        p99 = f"model_method:iis_request_duration_seconds:p99_rate5m{{{selector}}}"
        self.assertGreater(self.wait_for_query(p99), 0)
        # Every batch histogram sample so far lies in the rule's window: mean x batches = calls.
        self.assertAlmostEqual(
            self.wait_for_query(f'model:iis_batch_size:mean_rate5m{{job="{JOB}", model="{MODEL}"}}')
            * self.query_value(f'iis_batch_size_count{{job="{JOB}", model="{MODEL}"}}'),
            CLASSIFY_CALLS, places=6)
        groups = json.loads(http_get(self.api_url("/api/v1/rules")))["data"]["groups"]
        self.assertEqual(len(groups), 2)
        for group in groups:
            for rule in group["rules"]:
                self.assertEqual(rule["health"], "ok", f"{rule['name']}: {rule.get('lastError')}")
        firing = self.query('ALERTS{alertstate="firing"}')
        self.assertEqual(firing, [], "no alert may fire on a healthy server")

    def test_promtool_accepts_the_metrics_endpoint(self):
        metrics = http_get(f"http://127.0.0.1:{self.metrics_port}/metrics")
        result = subprocess.run(["promtool", "check", "metrics"], input=metrics,
                                capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_deployment_queries_use_exported_metrics(self):
        metrics = http_get(f"http://127.0.0.1:{self.metrics_port}/metrics")
        types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", metrics, flags=re.M))
        self.assertEqual(types.get("iis_requests_total"), "counter")
        # The sample names each family has: a histogram's _bucket, _sum and _count only.
        exported = set()
        for family, kind in types.items():
            if kind == "histogram":
                exported |= {f"{family}_bucket", f"{family}_sum", f"{family}_count"}
            else:
                exported.add(family)
        # A CPU server has no GPU memory figures: those names must be the server's own all the same.
        metrics_source = REPO.read("server", "metrics", "metrics.cc")
        for family in GPU_FAMILIES:
            self.assertIn(f'"{family}"', metrics_source)
        known = exported | GPU_FAMILIES | {"up", "ALERTS"}
        records = dc.recording_rules(REPO)
        queries = dc.deployment_queries(REPO)
        hpa = REPO.yaml("deploy", "kubernetes", "hpa.yaml")
        queries += [("hpa.yaml", m["pods"]["metric"]["name"]) for m in hpa["spec"]["metrics"]]
        used = set()
        for where, expr in queries:
            for name in dc.promql_metric_names(expr):
                if ":" in name:
                    self.assertIn(name, records, f"{where}: {name} is no recording rule")
                    continue
                used.add(name)
                self.assertIn(name, known,
                              f"{where} queries {name}, which the server does not export")
        self.assertTrue({"iis_requests_total", "iis_queue_depth"} <= used)
        # The names Prometheus itself stored are the server's too.
        stored = set(json.loads(http_get(self.api_url("/api/v1/label/__name__/values")))["data"])
        self.assertTrue({"iis_requests_total", "iis_request_duration_seconds_bucket",
                         "iis_batch_size_bucket", "iis_queue_depth"} <= stored)


def main():
    global REPO
    source_dir, binary_dir, argv = dc.parse_args()
    REPO = dc.Repo(source_dir, binary_dir)
    for tool in ("prometheus", "promtool"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing: install Debian's prometheus package (scripts/setup.sh)")
    unittest.main(argv=argv, verbosity=2)


if __name__ == "__main__":
    main()
