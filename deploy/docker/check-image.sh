#!/usr/bin/env bash
# Builds the CPU image (`--target cpu` of the Dockerfile) and checks that it really serves: the
# image runs with its own entrypoint, command, environment and user (read from the built image's
# configuration), and then
#   - gRPC health turns SERVING (the image's own HEALTHCHECK command, i.e. its internimage-client),
#   - one classify, detect and segment call each succeeds on a real photograph (chelsea, astronaut,
#     coffee from python3-skimage), made with the image's own internimage-client,
#   - /metrics (curl) shows iis_requests_total for the three calls,
#   - the server process runs as uid 10001 (read from /proc),
#   - SIGTERM while a call is in flight: that call still succeeds and the server exits 0.
#
#   deploy/docker/check-image.sh
#
# Engines: Docker when `docker info` reaches an engine; otherwise Debian's buildah (chroot
# isolation; no daemon needed). Only the Debian base image is needed from outside, and it is never
# pulled: when the image named by the Dockerfile's DEBIAN_IMAGE argument is not in the local store,
# debootstrap makes a Debian 12 minbase root file system from Debian's mirror and it is imported
# under that name (the tarball is cached in .cache/check-image/, so a second machine state or a
# removed image is quick to restore). That stand-in is Debian 12 at the mirror's current point
# release, not the registry's byte-identical image; a label on it says so.
#
# With buildah the container runs in its own network namespace, so the image's own ports (50051,
# 8002) never collide with servers on the machine; with Docker, Docker picks free host ports. The
# build uses buildah's/Docker's layer cache: a repeat with unchanged sources only reruns the checks.
# With buildah and ccache installed here, this machine's ccache directory is lent to the build
# stage, which then takes the objects the README's build compiled (same compiler and headers).
#
# Installs what it needs when missing (apt-get, as root, like scripts/setup.sh): buildah and
# debootstrap (without Docker), iproute2, curl, python3 and python3-skimage (the photographs).
# Idempotent; cleans up its containers, mounts and network namespace on every exit.
#
# Environment: IIS_IMAGE_TAG (default localhost/internimage-serving:cpu-check), IIS_IMAGE_CACHE
# (default .cache/check-image), IIS_IMAGE_CONTEXT (build context, default the repository),
# IIS_IMAGE_STARTUP_TIMEOUT (seconds until SERVING, default 600).
# Exit status: 0 every check passed, 1 a check or a step failed, 2 bad usage.
set -euo pipefail

started=$SECONDS
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
context=$(realpath "${IIS_IMAGE_CONTEXT:-$repo}")
cache_dir=$(realpath -m "${IIS_IMAGE_CACHE:-$repo/.cache/check-image}")
tag=${IIS_IMAGE_TAG:-localhost/internimage-serving:cpu-check}
startup_timeout=${IIS_IMAGE_STARTUP_TIMEOUT:-600}
photos=/usr/lib/python3/dist-packages/skimage/data
debian_mirror=http://deb.debian.org/debian

if [[ $# -gt 0 ]]; then
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
fi

# ---- reporting -----------------------------------------------------------------------------
checks=()
step() { printf '\n==== %s [%ss] ====\n' "$1" $((SECONDS - started)); }
pass() { checks+=("PASS  $1"); echo "PASS: $1"; }
summary() {
  printf '\n==== check-image summary (%s, engine %s) ====\n' "$tag" "${engine:-none}"
  [[ ${#checks[@]} -eq 0 ]] || printf '%s\n' "${checks[@]}"
  printf 'run time: %ss\n' $((SECONDS - started))
}
fail() {
  checks+=("FAIL  $1")
  echo "FAIL: $1" >&2
  if [[ -n ${server_log:-} && -s $server_log ]]; then
    echo "---- last lines of the server's output ----" >&2
    tail -n 30 "$server_log" >&2
  fi
  summary
  exit 1
}

# ---- clean-up of everything this run started (only ours: by id, name and pid) ----------------
engine=""
netns=""
server_ctr=""
client_ctr=""
docker_ctr=""
server_runner_pid=""
work_dir=$(mktemp -d /tmp/iis-check-image.XXXXXX)
server_log=$work_dir/server.log
cleanup() {
  local status=$?
  set +e
  if [[ -n $server_runner_pid ]] && kill -0 "$server_runner_pid" 2>/dev/null; then
    local pid
    pid=$(server_pid)
    [[ -z $pid ]] || kill -KILL "$pid" 2>/dev/null
    kill -KILL "$server_runner_pid" 2>/dev/null
    wait "$server_runner_pid" 2>/dev/null
  fi
  [[ -z $docker_ctr ]] || docker rm -f "$docker_ctr" >/dev/null 2>&1
  [[ -z $server_ctr ]] || buildah rm "$server_ctr" >/dev/null 2>&1
  [[ -z $client_ctr ]] || buildah rm "$client_ctr" >/dev/null 2>&1
  [[ -z $netns ]] || ip netns delete "$netns" 2>/dev/null
  rm -rf "$work_dir"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- prerequisites -------------------------------------------------------------------------
install_missing() {  # install_missing PACKAGE...: apt-get installs those not installed yet
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
      missing+=("$pkg")
  done
  [[ ${#missing[@]} -gt 0 ]] || return 0
  [[ $(id -u) -eq 0 ]] || fail "run as root (to install ${missing[*]} and to run containers)"
  echo "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

step "prerequisites"
[[ $(id -u) -eq 0 ]] || fail "run as root (containers, network namespaces, apt-get)"
if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  engine=docker
  install_missing curl python3 python3-skimage
else
  engine=buildah
  install_missing buildah debootstrap iproute2 curl python3 python3-skimage ca-certificates
  export BUILDAH_ISOLATION=chroot
fi
# Leftovers of an earlier run that was killed (its pid is in the names) would only take space.
if [[ $engine == buildah ]]; then
  while read -r name; do
    [[ $name =~ ^iis-check-(server|client)-([0-9]+)$ ]] || continue
    kill -0 "${BASH_REMATCH[2]}" 2>/dev/null || buildah rm "$name" >/dev/null 2>&1 || true
  done < <(buildah containers --format '{{.ContainerName}}' 2>/dev/null)
  while read -r name _; do
    [[ $name =~ ^iis-check-image-([0-9]+)$ ]] || continue
    kill -0 "${BASH_REMATCH[1]}" 2>/dev/null || ip netns delete "$name" 2>/dev/null || true
  done < <(ip netns list 2>/dev/null)
fi
for photo in chelsea astronaut coffee; do
  [[ -f $photos/$photo.png ]] || fail "$photos/$photo.png is missing (python3-skimage)"
done
echo "engine: $engine ($("$engine" --version))"

# ---- the Debian base image -------------------------------------------------------------------
dockerfile_arg() {  # the default of a global ARG of the Dockerfile
  sed -nE "s/^ARG $1=(.*)$/\1/p" "$context/Dockerfile" | head -n 1
}
image_exists() {
  if [[ $engine == docker ]]; then docker image inspect "$1" >/dev/null 2>&1
  else buildah inspect --type image "$1" >/dev/null 2>&1; fi
}

# make_debian_tarball <suite> <tarball>: a debootstrap minbase root file system with the same apt
# sources as Debian's own container images (main, -updates, -security), as a tar file.
make_debian_tarball() {
  local suite=$1 tarball=$2 rootfs=$work_dir/rootfs
  echo "debootstrap --variant=minbase $suite (from $debian_mirror)"
  nice -n 10 debootstrap --variant=minbase "$suite" "$rootfs" "$debian_mirror" \
    >"$work_dir/debootstrap.log" 2>&1 ||
    { tail -n 20 "$work_dir/debootstrap.log" >&2; fail "debootstrap $suite"; }
  rm -f "$rootfs/etc/apt/sources.list"
  cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $debian_mirror
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${debian_mirror}-security
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/log/*.log
  mkdir -p "$(dirname "$tarball")"
  tar --numeric-owner -C "$rootfs" -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
  rm -rf "$rootfs"
}

ensure_base_image() {
  local image=$1 suite tarball release
  if image_exists "$image"; then
    echo "$image is in the local image store"
    return
  fi
  case $image in
    debian:12|debian:12[.-]*|debian:bookworm*) suite=bookworm ;;
    *) fail "$image is not in the local store, and only Debian 12 base images can be made here" ;;
  esac
  tarball=$cache_dir/debian-$suite-minbase.tar
  if [[ -s $tarball ]]; then
    echo "$image: importing the cached root file system $tarball"
  else
    make_debian_tarball "$suite" "$tarball"
  fi
  release=$(tar -xOf "$tarball" ./etc/debian_version)
  local label="debootstrap --variant=minbase $suite (Debian $release) made by deploy/docker/check-image.sh, standing in for $image"
  if [[ $engine == docker ]]; then
    docker import --change 'CMD ["bash"]' --change "LABEL org.opencontainers.image.description=\"$label\"" \
      "$tarball" "$image" >/dev/null
  else
    local ctr mnt
    ctr=$(buildah from scratch)
    mnt=$(buildah mount "$ctr")
    tar --numeric-owner -C "$mnt" -xpf "$tarball"
    buildah umount "$ctr" >/dev/null
    buildah config --cmd '["bash"]' \
      --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      --label "org.opencontainers.image.description=$label" "$ctr"
    # A short name like debian:12.11-slim resolves to docker.io/library/... in the local store.
    local name=$image
    [[ $name == */* ]] || name=docker.io/library/$name
    buildah commit --quiet --rm "$ctr" "$name" >/dev/null
  fi
  echo "$image: made locally (Debian $release)"
}

step "base image"
base_image=$(dockerfile_arg DEBIAN_IMAGE)
[[ -n $base_image ]] || fail "the Dockerfile has no ARG DEBIAN_IMAGE=..."
ensure_base_image "$base_image"
pass "base image $base_image is in the local store (never pulled)"

# ---- build -------------------------------------------------------------------------------------
step "build --target cpu ($context)"
build_log=$work_dir/build.log
build_start=$SECONDS
if [[ $engine == docker ]]; then
  build=(docker build --pull=false --target cpu -t "$tag")
else
  build=(buildah build --layers --pull=never --format docker --target cpu -t "$tag")
  # The build stage compiles through ccache (scripts/setup.sh installs it, CMakeLists.txt uses
  # it) in /src/build, the depth of the README's build/: given this machine's cache, it reuses
  # the objects that build compiled with the same Debian compiler and headers (in CI: most of
  # them). Only a cache; the image is the same without it. (Docker's build has no such mount.)
  if command -v ccache >/dev/null; then
    ccache_dir=$(ccache -k cache_dir)
    mkdir -p "$ccache_dir"
    build+=(--volume "$ccache_dir:/root/.cache/ccache")
    echo "ccache: $ccache_dir mounted at /root/.cache/ccache for the build"
  fi
fi
build+=("$context")
stamp() {  # prefixes each line with the seconds since the build started
  local line
  while IFS= read -r line; do printf '[%5ss] %s\n' $((SECONDS - build_start)) "$line"; done
}
echo "${build[*]}"
if ! nice -n 10 "${build[@]}" 2>&1 | stamp >"$build_log"; then
  tail -n 40 "$build_log" >&2
  fail "image build (${build[*]})"
fi
# Where the time went: the start of every step (buildah: "STEP n/m", Docker: "#n [stage n/m]").
grep -E '^\[ *[0-9]+s\] (\[[0-9]+/[0-9]+\] )?(STEP [0-9]+/[0-9]+|#[0-9]+ \[)' "$build_log" |
  cut -c1-120 || true
cached_steps=$(grep -ciE "using cache|CACHED" "$build_log" || true)
pass "image built in $((SECONDS - build_start))s ($cached_steps steps from the layer cache)"

# ---- the image's own configuration --------------------------------------------------------------
step "image configuration"
if [[ $engine == docker ]]; then
  config_json=$(docker image inspect "$tag") || fail "docker image inspect $tag"
else
  config_json=$(buildah inspect --type image "$tag") || fail "buildah inspect $tag"
fi
# Writes config.txt (the user, the gRPC port from the health check's --target, the metrics port:
# the other exposed port), health.args (the health check command) and run.args (entrypoint +
# command), one word per line.
python3 - "$config_json" "$work_dir" <<'PY' || fail "reading the image configuration"
import json, sys
inspected = json.loads(sys.argv[1])
if isinstance(inspected, list):     # docker image inspect: [{"Config": {...}}]
    config = inspected[0]["Config"]
else:                               # buildah inspect: {"Docker": {"config": {...}}}
    config = inspected["Docker"]["config"]
health = (config.get("Healthcheck") or {}).get("Test") or []
if health[:1] != ["CMD"] or "--target" not in health:
    sys.exit(f"the image has no exec-form HEALTHCHECK with --target: {health}")
command = health[1:]
grpc_port = int(command[command.index("--target") + 1].rsplit(":", 1)[1])
exposed = sorted(int(p.split("/")[0]) for p in (config.get("ExposedPorts") or {}))
others = [p for p in exposed if p != grpc_port]
if grpc_port not in exposed or len(others) != 1:
    sys.exit(f"exposed ports {exposed}: expected the gRPC port {grpc_port} and one metrics port")
run = (config.get("Entrypoint") or []) + (config.get("Cmd") or [])
if not run:
    sys.exit("the image has neither ENTRYPOINT nor CMD")
if any("\n" in word for word in command + run):
    sys.exit("a word of the health check or command holds a newline")
work_dir = sys.argv[2]
with open(f"{work_dir}/config.txt", "w") as f:
    f.write(f"{config.get('User') or ''}\n{grpc_port}\n{others[0]}\n")
with open(f"{work_dir}/health.args", "w") as f:
    f.write("".join(word + "\n" for word in command))
with open(f"{work_dir}/run.args", "w") as f:
    f.write("".join(word + "\n" for word in run))
PY
{ read -r image_user; read -r grpc_port; read -r metrics_port; } <"$work_dir/config.txt"
mapfile -t health_cmd <"$work_dir/health.args"
mapfile -t run_cmd <"$work_dir/run.args"
echo "user: ${image_user:-(root)}; gRPC port $grpc_port, metrics port $metrics_port"
echo "entrypoint + command: ${run_cmd[*]}"
echo "health check: ${health_cmd[*]}"

# ---- run -----------------------------------------------------------------------------------------
# server_pid: the host pid of the image's server process (a descendant of the runner we started).
server_pid() {
  if [[ $engine == docker ]]; then
    docker inspect --format '{{.State.Pid}}' "$docker_ctr" 2>/dev/null | grep -v '^0$' || true
    return
  fi
  [[ -n $server_runner_pid ]] || return 0
  local exe=${run_cmd[0]:-} todo=("$server_runner_pid") pid children
  while [[ ${#todo[@]} -gt 0 ]]; do
    pid=${todo[0]}
    todo=("${todo[@]:1}")
    if [[ $pid != "$server_runner_pid" && $(readlink "/proc/$pid/exe" 2>/dev/null) == *"$exe" ]]; then
      echo "$pid"
      return
    fi
    read -r -a children <<<"$(cat /proc/"$pid"/task/*/children 2>/dev/null)" || true
    todo+=("${children[@]}")
  done
}
# in_image CMD...: runs CMD with the image's own binaries, beside the server (same network).
in_image() {
  if [[ $engine == docker ]]; then
    docker exec "$docker_ctr" "$@"
  else
    ip netns exec "$netns" buildah run --network host --volume "$photos:/photos:ro" \
      "$client_ctr" -- "$@"
  fi
}
# on_host_net CMD...: runs a host command (curl) where the server's ports are reachable.
metrics_url=""
on_host_net() {
  if [[ $engine == docker ]]; then "$@"; else ip netns exec "$netns" "$@"; fi
}

step "run the image"
if [[ $engine == docker ]]; then
  docker_ctr=iis-check-image-$$
  docker run -d --name "$docker_ctr" -p "127.0.0.1::$grpc_port" -p "127.0.0.1::$metrics_port" \
    -v "$photos:/photos:ro" "$tag" >/dev/null || fail "docker run $tag"
  docker logs -f "$docker_ctr" >"$server_log" 2>&1 &
  metrics_url="http://$(docker port "$docker_ctr" "$metrics_port/tcp" | head -n 1)/metrics"
else
  netns=iis-check-image-$$
  ip netns add "$netns"
  ip -n "$netns" link set lo up
  server_ctr=$(buildah from --pull=never --name "iis-check-server-$$" "$tag")
  client_ctr=$(buildah from --pull=never --name "iis-check-client-$$" "$tag")
  # buildah run applies the image's environment, working directory and user (no --user here);
  # the command is the image's ENTRYPOINT + CMD, unchanged.
  ip netns exec "$netns" buildah run --network host "$server_ctr" -- "${run_cmd[@]}" \
    >"$server_log" 2>&1 &
  server_runner_pid=$!
  metrics_url="http://127.0.0.1:$metrics_port/metrics"
fi

echo "waiting up to ${startup_timeout}s for SERVING (${health_cmd[*]})"
deadline=$((SECONDS + startup_timeout))
health_status=1
while [[ $SECONDS -lt $deadline ]]; do
  if [[ $engine == buildah ]] && ! kill -0 "$server_runner_pid" 2>/dev/null; then
    fail "the server exited during start-up"
  fi
  if [[ $engine == docker && $(docker inspect --format '{{.State.Running}}' "$docker_ctr") != true ]]; then
    fail "the server exited during start-up"
  fi
  health_status=0
  in_image "${health_cmd[@]}" >"$work_dir/health.txt" 2>&1 || health_status=$?
  [[ $health_status -ne 0 ]] || break
  sleep 3
done
[[ $health_status -eq 0 ]] || fail "health did not turn SERVING within ${startup_timeout}s: $(cat "$work_dir/health.txt")"
pass "gRPC health SERVING after $((SECONDS - deadline + startup_timeout))s (the image's HEALTHCHECK: ${health_cmd[*]}): $(tr '\n' ' ' <"$work_dir/health.txt")"

pid=$(server_pid)
[[ -n $pid ]] || fail "cannot find the server process"
uid_line=$(grep '^Uid:' "/proc/$pid/status")
read -r _ real_uid effective_uid _ <<<"$uid_line"
[[ $real_uid == 10001 && $effective_uid == 10001 ]] ||
  fail "the server runs as uid $real_uid/$effective_uid, not 10001 ($uid_line)"
pass "the server (pid $pid, $(readlink "/proc/$pid/exe")) runs as uid 10001 (image USER ${image_user})"

step "one call per task"
target=127.0.0.1:$grpc_port
# A functional check, not a latency one: on a busy 2-core machine a CPU segmentation can take
# longer than the client's default deadline (30s).
call_deadline=300s
# call <command> <photo>: the image's client on a real photograph (/photos/<photo>.png), --json;
# the answer must be "ok" and name its model, and is summarised.
call() {
  local command=$1 photo=/photos/$2.png out=$work_dir/$1.json summary call_start=$SECONDS
  in_image internimage-client "$command" --target "$target" --deadline "$call_deadline" --json \
    "$photo" >"$out" 2>"$work_dir/$command.err" ||
    fail "internimage-client $command $photo: $(cat "$work_dir/$command.err")"
  summary=$(python3 - "$out" <<'PY'
import json, sys
(result,) = json.load(open(sys.argv[1]))["results"]
if not result.get("ok"):
    sys.exit(f"not ok: {result}")
response = result["response"]
text = f"model {response['metadata']['model']}"
if "classes" in response:
    top = response["classes"][0]
    text += f": top-1 {top.get('label')!r} ({top.get('score', 0):.3f})"
elif "detections" in response:
    text += f": {len(response['detections'])} instances"
elif "class_pixels" in response:
    text += (f": {response.get('width')}x{response.get('height')} label map, "
             f"{len(response['class_pixels'])} classes")
print(text)
PY
  ) || fail "internimage-client $command: unexpected answer: $(head -c 400 "$out")"
  pass "$command $photo in $((SECONDS - call_start))s: $summary"
}
call classify chelsea
call detect astronaut
call segment coffee

step "metrics"
on_host_net curl -fsS --max-time 10 "$metrics_url" >"$work_dir/metrics.txt" ||
  fail "curl $metrics_url"
requests=$(grep -E '^iis_requests_total\{' "$work_dir/metrics.txt" || true)
[[ -n $requests ]] || fail "$metrics_url has no iis_requests_total samples"
for method in Classify Detect Segment; do
  grep -qE "^iis_requests_total\{[^}]*method=\"[^\"]*$method\"[^}]*\} [1-9]" <<<"$requests" ||
    fail "iis_requests_total has no successful $method: $requests"
done
pass "curl $metrics_url: $(wc -l <<<"$requests") iis_requests_total series, one per call made"

step "SIGTERM drains and exits 0"
# A segmentation call is in flight (the server's iis_inflight_requests counts it) when SIGTERM
# arrives: the drain must let it finish.
in_image internimage-client segment --target "$target" --deadline "$call_deadline" --json \
  /photos/coffee.png >"$work_dir/inflight.json" 2>"$work_dir/inflight.err" &
inflight_pid=$!
in_flight=0
for _ in $(seq 1 1200); do
  if on_host_net curl -fsS --max-time 2 "$metrics_url" 2>/dev/null |
       grep -qE '^iis_inflight_requests\{[^}]*method="Segment"[^}]*\} [1-9]'; then
    in_flight=1
    break
  fi
  kill -0 "$inflight_pid" 2>/dev/null || break
  sleep 0.05
done
[[ $in_flight -eq 1 ]] || fail "the segmentation call never showed in iis_inflight_requests"
pid=$(server_pid)
[[ -n $pid ]] || fail "cannot find the server process"
term_sent=$SECONDS
kill -TERM "$pid"
inflight_status=0
wait "$inflight_pid" || inflight_status=$?
[[ $inflight_status -eq 0 ]] ||
  fail "the call in flight at SIGTERM failed ($inflight_status): $(cat "$work_dir/inflight.err")"
exit_status=""
if [[ $engine == docker ]]; then
  exit_status=$(timeout 60 docker wait "$docker_ctr" || echo timeout)
else
  for _ in $(seq 1 120); do
    kill -0 "$server_runner_pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$server_runner_pid" 2>/dev/null; then
    exit_status=timeout
  else
    exit_status=0
    wait "$server_runner_pid" || exit_status=$?
    server_runner_pid=""
  fi
fi
[[ $exit_status == 0 ]] || fail "after SIGTERM the server exited with $exit_status, not 0"
drain_lines=$(grep -iE "draining|drained" "$server_log" | sed 's/^/    /' || true)
pass "SIGTERM: the call in flight succeeded and the server exited 0 after $((SECONDS - term_sent))s"
[[ -z $drain_lines ]] || printf '%s\n' "$drain_lines"

summary
echo "PASS"
