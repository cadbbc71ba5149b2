#!/usr/bin/env bash
# Validates the Kubernetes manifests against the Kubernetes API schemas and lints them and the
# Dockerfile with checkov. CI runs it after the test suite.
#
#   deploy/check-manifests.sh
#
# 1. A virtual environment in .cache/check-manifests/ (git-ignored) with Debian's python3 and the
#    packages of deploy/check-manifests-requirements.txt, every one pinned (kubernetes-validate,
#    checkov and what they pull in). It is reused while that file is unchanged.
# 2. kubernetes-validate --strict (unknown fields are errors) checks every object of every
#    manifest in deploy/kubernetes/ against the schemas of Kubernetes 1.27 (the oldest release the
#    manifests support: gRPC probes became GA there) and 1.37 (the newest the pinned
#    kubernetes-validate knows). An object whose schema is unknown fails. Not manifests, and so
#    checked otherwise: kustomization.yaml (its resources must exist and cover every manifest but
#    weights-loader.yaml, which is applied on its own) and prometheus-adapter/values.yaml (Helm
#    values).
# 3. checkov on the Dockerfile (framework dockerfile) and on deploy/kubernetes/ (framework
#    kubernetes), offline (--skip-download). Checks that are deliberately not followed are
#    suppressed where they apply, with the reason: `# checkov:skip=...` in the Dockerfile,
#    `checkov.io/skipN` annotations in the manifests. The suppressions are listed.
#
# Installs python3 and python3-venv with apt-get when missing (as root, like scripts/setup.sh);
# pip needs PyPI the first time. Exit status: 0 everything passed, 1 a check failed, 2 bad usage.
set -euo pipefail

KUBERNETES_VERSIONS=(1.27.0 1.37.0)

started=$SECONDS
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
if [[ $# -gt 0 ]]; then
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
fi
requirements=deploy/check-manifests-requirements.txt
work_dir=$repo/.cache/check-manifests
venv=$work_dir/venv
failures=()

step() { printf '\n==== %s [%ss] ====\n' "$1" $((SECONDS - started)); }
failed() { failures+=("$1"); echo "FAIL: $1" >&2; }

step "tools"
missing=()
for pkg in python3 python3-venv; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$pkg")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  [[ $(id -u) -eq 0 ]] || { echo "run as root to install ${missing[*]}" >&2; exit 1; }
  echo "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" \
    >/dev/null
fi
wanted=$(sha256sum "$requirements" | cut -d' ' -f1)
if [[ ! -x $venv/bin/python || $(cat "$work_dir/installed" 2>/dev/null) != "$wanted" ]]; then
  echo "creating $venv from $requirements"
  rm -rf "$venv" "$work_dir/installed"
  mkdir -p "$work_dir"
  /usr/bin/python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$requirements"
  echo "$wanted" >"$work_dir/installed"
fi
echo "kubernetes-validate $("$venv/bin/kubernetes-validate" --version 2>&1 | tail -n 1)," \
     "checkov $("$venv/bin/checkov" --version 2>&1 | tail -n 1)"

step "kustomization"
"$venv/bin/python" - <<'PY' || failed "deploy/kubernetes/kustomization.yaml"
import glob, os, sys, yaml
base = "deploy/kubernetes"
with open(os.path.join(base, "kustomization.yaml"), encoding="utf-8") as f:
    kustomization = yaml.safe_load(f)
listed = kustomization.get("resources", [])
problems = [f"{r} does not exist" for r in listed if not os.path.isfile(os.path.join(base, r))]
manifests = sorted(os.path.relpath(p, base) for p in glob.glob(os.path.join(base, "*.yaml")))
apart = {"kustomization.yaml", "weights-loader.yaml"}
problems += [f"{m} is not among its resources" for m in manifests if m not in listed + list(apart)]
for problem in problems:
    print(f"kustomization.yaml: {problem}", file=sys.stderr)
print(f"kustomization.yaml lists {len(listed)} manifests; weights-loader.yaml is applied apart")
sys.exit(1 if problems else 0)
PY

step "Kubernetes schemas (kubernetes-validate --strict)"
mapfile -t manifests < <(find deploy/kubernetes -name '*.yaml' ! -name kustomization.yaml \
                           ! -path '*/prometheus-adapter/*' | sort)
for version in "${KUBERNETES_VERSIONS[@]}"; do
  status=0
  output=$("$venv/bin/kubernetes-validate" --strict -k "$version" "${manifests[@]}" 2>&1) || status=$?
  passed=$(grep -c "passed for resource" <<<"$output" || true)
  if [[ $status -ne 0 ]] || grep -qE "^(ERROR|WARN)" <<<"$output"; then
    grep -E "^(ERROR|WARN)" <<<"$output" >&2 || printf '%s\n' "$output" >&2
    failed "kubernetes-validate against Kubernetes $version"
  else
    echo "Kubernetes $version: $passed objects in ${#manifests[@]} files valid"
  fi
done

step "checkov"
# run_checkov <what> <checkov arguments>: prints failed and skipped checks; fails on any failure.
run_checkov() {
  local what=$1 report=$work_dir/checkov-$1.json status=0
  shift
  "$venv/bin/checkov" --skip-download --output json "$@" >"$report" 2>"$report.log" ||
    status=$?
  "$venv/bin/python" - "$report" "$what" "$status" <<'PY' || failed "checkov $what"
import json, sys
path, what, status = sys.argv[1], sys.argv[2], int(sys.argv[3])
try:
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
except ValueError:
    sys.exit(f"checkov {what}: no JSON report (exit {status}); see {path}.log")
reports = data if isinstance(data, list) else [data]
failed = 0
for report in reports:
    results = report.get("results", {})
    summary = report.get("summary", {})
    print(f"checkov {what} ({report.get('check_type')}): {summary.get('passed', 0)} passed, "
          f"{summary.get('failed', 0)} failed, {summary.get('skipped', 0)} skipped")
    for check in results.get("failed_checks", []):
        failed += 1
        print(f"  FAILED  {check['check_id']} {check['check_name']}: {check['resource']} "
              f"({check['file_path']}:{check['file_line_range']})", file=sys.stderr)
    for check in results.get("skipped_checks", []):
        reason = (check.get("check_result") or {}).get("suppress_comment", "")
        print(f"  skipped {check['check_id']} {check['resource']}: {reason.strip()}")
if not reports or not any("summary" in r for r in reports):
    failed += 1
    print(f"checkov {what}: nothing was scanned", file=sys.stderr)
sys.exit(1 if failed or status not in (0, 1) else 0)
PY
}
run_checkov dockerfile --framework dockerfile -f Dockerfile
run_checkov kubernetes --framework kubernetes -d deploy/kubernetes

printf '\n==== check-manifests: %ss ====\n' $((SECONDS - started))
if [[ ${#failures[@]} -gt 0 ]]; then
  printf 'FAILED: %s\n' "${failures[@]}" >&2
  exit 1
fi
echo "PASS (Kubernetes ${KUBERNETES_VERSIONS[*]}; checkov: Dockerfile and deploy/kubernetes)"
