#!/usr/bin/env bash
# End-to-end test of the Docker image, on this machine only (no public registry needed).
#
#   deploy/docker-test.sh            (as root; `make docker-test` runs it)
#
#  1. installs docker.io + debootstrap from the Debian mirror if missing (quick when present);
#  2. uses the running Docker engine, or starts dockerd with the default bridge and iptables
#     off; every build and run uses --network host, so all traffic stays on this machine;
#  3. builds the base image from Debian packages (deploy/base-image.sh, cached);
#  4. builds the app image with what pip has here: the local torch CPU wheel from pip's
#     find-links and pip's CA bundle, staged in deploy/build-extras/ (git-ignored);
#  5. runs it, waits for /health and Docker's HEALTHCHECK, checks it runs as non-root with
#     python as PID 1 and no dev packages, POSTs /predict and compares the probabilities to
#     local scoring of the same text with the same checkpoint (within 1e-5), and an explained
#     /predict with local explanations (same tokens, scores within 1e-4);
#  6. `docker stop` (SIGTERM): expects exit code 0 within $STOP_BUDGET seconds;
#  7. reports image size (and its layers; over SIZE_BUDGET_MB fails) and timings, then
#     removes the container, the app image and its builder layers, and stops dockerd if it
#     started it.
# Two things stay cached, each replaced (never accumulated) when its inputs change: the base
# image (deploy/base-image.sh) and the Dockerfile's `deps` stage (torch & co., tagged
# $DEPS_TAG), so a rerun only rebuilds the project layers.
#   deploy/docker-test.sh --purge    removes both caches (and the base image tarball).
#
# Environment (all optional):
#   PYTHON        python with the project installed, for local scoring (.venv/bin/python)
#   CACHE_DIR     base-image cache and logs (/var/cache/sentiment-docker)
#   BASE_IMAGE    use this base instead of building one (e.g. python:3.11-slim-bookworm)
#   IMAGE         app image tag (sentiment-rnn:docker-test)
#   DEPS_TAG      tag of the cached deps stage (sentiment-rnn-cache:deps); DEPS_TAG= disables
#   KEEP_IMAGE=1  keep the app image afterwards (for `docker run` by hand)
#   BUILD_CPUS    CPUs the build may use (1); RUN_CPUS: CPUs and TORCH_THREADS of the container (1)
#   STOP_BUDGET   seconds `docker stop` may take (15)
#   SIZE_BUDGET_MB  largest acceptable image, MB (750: ONNX Runtime and onnx add ~55 MB)
#   TORCH_INDEX_URL  extra index for torch in the build (default: none when a local torch
#                 wheel was staged, else the Dockerfile's https://download.pytorch.org/whl/cpu)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
[[ -x $PYTHON ]] || PYTHON=$(command -v python3)
CACHE_DIR=${CACHE_DIR:-/var/cache/sentiment-docker}
IMAGE=${IMAGE:-sentiment-rnn:docker-test}
DEPS_TAG=${DEPS_TAG-sentiment-rnn-cache:deps}
BASE_TAG=${BASE_TAG:-sentiment-base:bookworm-py311}
PURGE=0
[[ ${1:-} == --purge ]] && PURGE=1
KEEP_IMAGE=${KEEP_IMAGE:-0}
BUILD_CPUS=${BUILD_CPUS:-1}
RUN_CPUS=${RUN_CPUS:-1}
STOP_BUDGET=${STOP_BUDGET:-15}
SIZE_BUDGET_MB=${SIZE_BUDGET_MB:-750}
CHECKPOINT=artifacts/review-sentiment
EXTRAS=deploy/build-extras
CONTAINER=sentiment-docker-test-$$
export DOCKER_BUILDKIT=0   # classic builder: in every engine, no buildx plugin needed

now_ms() { echo $(($(date +%s%N) / 1000000)); }
secs() { local ms=$(($(now_ms) - $1)); printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100)); }
T0=$(now_ms)
declare -a TIMINGS=()
log() { printf '[docker-test %6ss] %s\n' "$(secs "$T0")" "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

[[ $(id -u) == 0 ]] || die "run as root (installs packages, starts dockerd, runs debootstrap)"
[[ $PURGE == 1 || -f $CHECKPOINT/manifest.json ]] \
    || die "no shipped checkpoint at $CHECKPOINT (train it first)"

# ------------------------------------------------------------------ 1. tools
t=$(now_ms)
if ! command -v dockerd >/dev/null || ! command -v docker >/dev/null \
    || ! command -v debootstrap >/dev/null; then
    log "installing docker.io debootstrap"
    # Keep the package scripts from starting a default dockerd (bridge + iptables).
    created_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
        created_policy=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends \
        docker.io debootstrap; } >"/tmp/docker-test-apt.$$.log" 2>&1 \
        || { tail -n 30 "/tmp/docker-test-apt.$$.log" >&2; die "apt-get install failed"; }
    [[ $created_policy == 1 ]] && rm -f /usr/sbin/policy-rc.d
    rm -f "/tmp/docker-test-apt.$$.log"
fi
TIMINGS+=("tools: $(secs "$t")s")
mkdir -p "$CACHE_DIR"
exec 9>"$CACHE_DIR/docker-test.lock"
flock -w 900 9 || die "another docker-test holds $CACHE_DIR/docker-test.lock"

# ------------------------------------------------------------------ cleanup on any exit
DOCKERD_PID=
cleanup() {
    local rc=$? t
    set +e
    t=$(now_ms)
    if docker container inspect "$CONTAINER" >/dev/null 2>&1; then
        [[ $rc != 0 ]] && { log "container logs:"; docker logs --tail 40 "$CONTAINER" >&2 2>&1; }
        docker rm -f "$CONTAINER" >/dev/null
    fi
    if [[ $KEEP_IMAGE != 1 ]] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
        docker rmi -f "$IMAGE" >/dev/null
    fi
    # The classic builder leaves the builder stage, and a deps stage the cache tag moved
    # away from, as untagged images: remove them (the tagged deps cache stays).
    if docker info >/dev/null 2>&1; then
        docker image prune -f --filter label=sentiment-rnn.stage=builder >/dev/null
        docker image prune -f --filter label=sentiment-rnn.stage=deps >/dev/null
    fi
    find "$EXTRAS" -mindepth 1 -not -name .gitignore -delete 2>/dev/null
    if [[ -n $DOCKERD_PID ]]; then
        log "stopping the dockerd this test started (pid $DOCKERD_PID)"
        kill -TERM "$DOCKERD_PID" 2>/dev/null
        for _ in $(seq 60); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.5; done
        kill -0 "$DOCKERD_PID" 2>/dev/null && kill -KILL "$DOCKERD_PID"
    fi
    log "cleaned up in $(secs "$t")s; total $(secs "$T0")s"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ 2. engine
t=$(now_ms)
if docker info >/dev/null 2>&1; then
    log "using the running Docker engine"
else
    flags=(--bridge=none --iptables=false)
    dockerd --help 2>&1 | grep -q -- '--ip6tables' && flags+=(--ip6tables=false)
    log "starting dockerd ${flags[*]}"
    setsid dockerd "${flags[@]}" >"$CACHE_DIR/dockerd.log" 2>&1 </dev/null &
    DOCKERD_PID=$!
    for _ in $(seq 120); do
        docker info >/dev/null 2>&1 && break
        kill -0 "$DOCKERD_PID" 2>/dev/null || { tail -n 20 "$CACHE_DIR/dockerd.log" >&2; die "dockerd exited"; }
        sleep 0.5
    done
    docker info >/dev/null 2>&1 || die "dockerd did not come up in 60s (see $CACHE_DIR/dockerd.log)"
fi
TIMINGS+=("engine: $(secs "$t")s")

if [[ $PURGE == 1 ]]; then
    for tag in "$DEPS_TAG" "$BASE_TAG"; do
        [[ -n $tag ]] && docker image inspect "$tag" >/dev/null 2>&1 && docker rmi "$tag" >/dev/null
    done
    rm -f "$CACHE_DIR"/base-*.tar
    log "purged $DEPS_TAG, $BASE_TAG and $CACHE_DIR/base-*.tar"
    exit 0
fi

# ------------------------------------------------------------------ 3. base image
t=$(now_ms)
if [[ -z ${BASE_IMAGE:-} ]]; then
    BASE_IMAGE=$(CACHE_DIR=$CACHE_DIR BASE_TAG=$BASE_TAG deploy/base-image.sh)
fi
docker image inspect "$BASE_IMAGE" >/dev/null || die "base image $BASE_IMAGE not found"
TIMINGS+=("base image: $(secs "$t")s")

# ------------------------------------------------------------------ 4. build
t=$(now_ms)
find "$EXTRAS" -mindepth 1 -not -name .gitignore -delete
mkdir -p "$EXTRAS/wheels"
# pip's settings here (env first, then pip config): CA bundle, find-links, index.
pip_setting() {
    local env=$1 key=$2
    if [[ -n ${!env:-} ]]; then echo "${!env}"; else "$PYTHON" -m pip config get "global.$key" 2>/dev/null || true; fi
}
cert=$(pip_setting PIP_CERT cert)
[[ -z $cert ]] && cert=${REQUESTS_CA_BUNDLE:-${SSL_CERT_FILE:-}}
if [[ -n $cert && -f $cert ]]; then
    cp "$cert" "$EXTRAS/ca-certificates.crt"
fi
# Local wheels of the runtime requirements only (e.g. the torch CPU wheel), hard-linked if possible.
staged_torch=0
for dir in $(pip_setting PIP_FIND_LINKS find-links); do
    dir=${dir#file://}
    [[ -d $dir ]] || continue
    while IFS= read -r wheel; do
        cp -l "$wheel" "$EXTRAS/wheels/" 2>/dev/null || cp "$wheel" "$EXTRAS/wheels/"
        [[ $(basename "$wheel") == torch-* ]] && staged_torch=1
    done < <("$PYTHON" - "$dir" <<'EOF'
import pathlib, platform, re, sys, tomllib
deps = tomllib.loads(pathlib.Path("pyproject.toml").read_text())["project"]["dependencies"]
names = {re.split(r"[<>=!~;\[ ]", d, maxsplit=1)[0].lower().replace("-", "_") for d in deps}
for wheel in sorted(pathlib.Path(sys.argv[1]).glob("*.whl")):
    name, *_, python, _abi, plat = wheel.stem.split("-")
    fits = python in ("cp311", "py3") and (plat == "any" or plat.endswith(platform.machine()))
    if name.lower() in names and fits:
        print(wheel)
EOF
)
done
build_args=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
if [[ -n ${TORCH_INDEX_URL+set} ]]; then
    build_args+=(--build-arg "TORCH_INDEX_URL=$TORCH_INDEX_URL")
elif [[ $staged_torch == 1 ]]; then
    build_args+=(--build-arg "TORCH_INDEX_URL=")   # the local wheel; no download.pytorch.org
fi
index=$(pip_setting PIP_INDEX_URL index-url)
[[ -n $index ]] && build_args+=(--build-arg "PIP_INDEX_URL=$index")
for proxy in HTTP_PROXY HTTPS_PROXY NO_PROXY http_proxy https_proxy no_proxy; do
    [[ -n ${!proxy:-} ]] && build_args+=(--build-arg "$proxy")
done
build() {
    docker build --network host --force-rm --cpu-quota $((BUILD_CPUS * 100000)) \
        "${build_args[@]}" "$@" . >>"$CACHE_DIR/build.log" 2>&1 \
        || { tail -n 40 "$CACHE_DIR/build.log" >&2; die "docker build failed (log: $CACHE_DIR/build.log)"; }
}
: >"$CACHE_DIR/build.log"
if [[ -n $DEPS_TAG ]]; then
    log "building the deps stage as $DEPS_TAG (cached unless pyproject.toml or wheels changed)"
    build --target deps -t "$DEPS_TAG"
fi
log "building $IMAGE from $BASE_IMAGE (staged: $(find "$EXTRAS" -name '*.whl' -o -name '*.crt' | wc -l) files)"
build -t "$IMAGE"
log "built: $(grep -c 'Using cache' "$CACHE_DIR/build.log") of $(grep -c '^Step ' "$CACHE_DIR/build.log") steps from cache $(grep -m1 '^torch ' "$CACHE_DIR/build.log" || true)"
find "$EXTRAS" -mindepth 1 -not -name .gitignore -delete
build_s=$(secs "$t")
TIMINGS+=("build: ${build_s}s")

size=$(docker image inspect -f '{{.Size}}' "$IMAGE")
base_size=$(docker image inspect -f '{{.Size}}' "$BASE_IMAGE")
log "image $IMAGE: $((size / 1000000)) MB (base $((base_size / 1000000)) MB)"
# What the MB are: the image's own layers over the base (the venv, the checkpoint, ...).
docker history --no-trunc --format '{{.Size}}\t{{.CreatedBy}}' "$IMAGE" | awk -F'\t' '
    $1 != "0B" { sub(/^\/bin\/sh -c (#\(nop\) )? */, "", $2); sub(/ (dir|file):[0-9a-f]+/, "", $2)
                 printf "    %8s  %.80s\n", $1, ($2 == "" ? "base image" : $2) }' >&2
((size <= SIZE_BUDGET_MB * 1000000)) \
    || die "image is $((size / 1000000)) MB, over the ${SIZE_BUDGET_MB} MB budget (SIZE_BUDGET_MB)"

# ------------------------------------------------------------------ 5. run and check
t=$(now_ms)
port=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# Locked down like deploy/k8s/deployment.yaml: read-only root, /tmp only, no capabilities.
docker run -d --name "$CONTAINER" --network host --cpus "$RUN_CPUS" --memory 1g \
    --read-only --tmpfs /tmp --cap-drop ALL --security-opt no-new-privileges \
    -e PORT="$port" -e TORCH_THREADS="$RUN_CPUS" --health-interval 2s "$IMAGE" >/dev/null
url=http://127.0.0.1:$port
log "container $CONTAINER on $url"

# Waits for /health 200, then POSTs /predict and compares with local scoring.
"$PYTHON" - "$url" "$CHECKPOINT" "$CONTAINER" <<'EOF'
import json, subprocess, sys, time, urllib.error, urllib.request
url, checkpoint, container = sys.argv[1:]

start = time.monotonic()
while True:
    try:
        with urllib.request.urlopen(url + "/health", timeout=2) as response:
            if response.status == 200:
                break
    except (urllib.error.URLError, OSError):
        pass
    state = subprocess.run(["docker", "inspect", "-f", "{{.State.Running}}", container],
                           capture_output=True, text=True).stdout.strip()
    if state != "true":
        sys.exit("container stopped before /health answered 200")
    if time.monotonic() - start > 120:
        sys.exit("/health did not answer 200 within 120 s")
    time.sleep(0.25)
print(f"    /health 200 after {time.monotonic() - start:.1f}s", file=sys.stderr)

with urllib.request.urlopen(url + "/health/live", timeout=5) as response:
    assert response.status == 200, response.status
# The try-it page ships as package data (service/app/static/): present in the installed package.
for path, marker in (("/", b"<textarea"), ("/static/page.js", b"predict"), ("/static/page.css", b"--up")):
    with urllib.request.urlopen(url + path, timeout=5) as response:
        assert response.status == 200 and marker in response.read(), path

text = "A wonderful film: the acting was superb and I loved the ending, though the plot was thin."
request = urllib.request.Request(url + "/predict", data=json.dumps({"text": text}).encode(),
                                 headers={"Content-Type": "application/json"})
with urllib.request.urlopen(request, timeout=30) as response:
    body = json.loads(response.read())
print(f"    /predict -> {json.dumps(body)}", file=sys.stderr)

from model.predictor import Predictor  # noqa: E402

predictor = Predictor.load(checkpoint)
local = predictor.predict_texts([text])[0].tolist()
expected = dict(zip(predictor.labels, local))
[prediction] = body["predictions"]
got = prediction["probabilities"]
assert set(got) == set(expected), (got, expected)
worst = max(abs(got[k] - expected[k]) for k in expected)
assert worst <= 1e-5, f"container {got} != local {expected} (max diff {worst:.2e})"
best = max(expected, key=expected.get)
assert prediction["label"] == best, (prediction["label"], best)
assert abs(prediction["confidence"] - expected[best]) <= 1e-5, prediction
# The same checkpoint files: the id carries the manifest's sha256.
assert body["model"] == predictor.checkpoint.model_id, (body["model"], predictor.checkpoint.model_id)
print(f"    matches local scoring (max |diff| {worst:.1e}); model {body.get('model')!r}",
      file=sys.stderr)

# Explanations run autograd through the slimmed torch: same tokens, spans and scores as here.
request = urllib.request.Request(url + "/predict", data=json.dumps({"text": text, "explain": True}).encode(),
                                 headers={"Content-Type": "application/json"})
with urllib.request.urlopen(request, timeout=60) as response:
    [explained] = json.loads(response.read())["predictions"]
from service.runtime.sentiment_model import Explainer, load_explain_fn  # noqa: E402

explain_fn = load_explain_fn()
assert explain_fn is not None, "no model.explain here"
[local_explanation] = Explainer(predictor, explain_fn, 400).explain([(text, 0)])  # the count only sizes the work
got_tokens = [(a["token"], a["start"], a["end"]) for a in explained["explanation"]]
assert got_tokens == [(a["token"], a["start"], a["end"]) for a in local_explanation], got_tokens
worst = max(abs(a["score"] - b["score"]) for a, b in zip(explained["explanation"], local_explanation))
assert worst <= 1e-4, f"explanation scores differ from local by {worst:.2e}"
print(f"    explanation matches local ({len(got_tokens)} tokens, max |diff| {worst:.1e})", file=sys.stderr)
EOF
TIMINGS+=("start to ready + predict: $(secs "$t")s")

user=$(docker exec "$CONTAINER" id -u)
[[ $user != 0 ]] || die "the server runs as root"
pid1=$(docker exec "$CONTAINER" cat /proc/1/cmdline | tr '\0' ' ')
[[ $pid1 == "python -m service "* ]] || die "PID 1 is '$pid1', not the server (exec-form CMD?)"
docker exec "$CONTAINER" python -c '
import importlib.util, torch
extra = [m for m in ("gensim", "matplotlib", "pytest", "ruff", "mypy", "pip") if importlib.util.find_spec(m)]
assert not extra, f"not runtime dependencies: {extra}"
# deploy/slim-venv.sh ran (SLIM=1): torch'"'"'s compiler stack and sympy are gone.
kept = [m for m in ("sympy", "networkx", "torch._inductor") if importlib.util.find_spec(m)]
assert not kept, f"the slimming step did not run: {kept}"
assert torch.version.cuda is None, "CUDA build of torch"
' || die "image holds more than the runtime"
log "runs as uid $user; PID 1 is '$pid1'; runtime-only packages; CPU torch"
health=
for _ in $(seq 60); do
    health=$(docker inspect -f '{{.State.Health.Status}}' "$CONTAINER")
    [[ $health == healthy ]] && break
    sleep 0.5
done
[[ $health == healthy ]] || die "Docker HEALTHCHECK status is '$health'"
memory=$(docker stats --no-stream --format '{{.MemUsage}}' "$CONTAINER")
log "HEALTHCHECK: $health; memory $memory"

# ------------------------------------------------------------------ 6. graceful stop
t=$(now_ms)
docker stop -t 30 "$CONTAINER" >/dev/null
stop_s=$(secs "$t"); stop_ms=$(($(now_ms) - t))
code=$(docker inspect -f '{{.State.ExitCode}}' "$CONTAINER")
docker logs --tail 5 "$CONTAINER" 2>&1 | sed 's/^/    | /' >&2
[[ $code == 0 ]] || die "exit code $code after docker stop (137 = killed after the timeout)"
((stop_ms <= STOP_BUDGET * 1000)) || die "docker stop took ${stop_s}s (budget ${STOP_BUDGET}s)"
log "docker stop (SIGTERM): exit 0 in ${stop_s}s"
TIMINGS+=("stop: ${stop_s}s")

TIMINGS+=("total: $(secs "$T0")s")
printf -v summary '%s, ' "${TIMINGS[@]}"
log "PASS. image $((size / 1000000)) MB; ${summary%, }"
