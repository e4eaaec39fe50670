#!/usr/bin/env bash
# Build a "Python 3.11 slim" base image from Debian bookworm packages, without any registry.
#
#   deploy/base-image.sh [--force]          -> prints the image tag on stdout
#
# Debian bookworm's python3 is 3.11, so debootstrap's minbase variant plus python3 and
# python3-venv gives the same thing as python:3.11-slim-bookworm, built only from the Debian
# mirror apt already uses here. The rootfs is imported with `docker import` and tagged
# $BASE_TAG. It is slow (a minute or two), so it is cached twice:
#   - the tagged image stays in the engine, labelled with a hash of this script, and
#   - `docker save` of it is kept in $CACHE_DIR, so a wiped /var/lib/docker reloads in seconds.
# A change to this script (or --force) rebuilds it.
#
# Needs root, a running Docker engine, and debootstrap (deploy/docker-test.sh installs both).
# Environment:
#   BASE_TAG         image tag (default sentiment-base:bookworm-py311)
#   CACHE_DIR        cache directory (default /var/cache/sentiment-docker)
#   DEBIAN_MIRROR    mirror URL (default: the one apt uses for bookworm, else deb.debian.org)
#   DEBIAN_SECURITY  security mirror URL (default: apt's, else deb.debian.org/debian-security)
#   DOCKER           docker CLI (default docker)
set -euo pipefail

BASE_TAG=${BASE_TAG:-sentiment-base:bookworm-py311}
CACHE_DIR=${CACHE_DIR:-/var/cache/sentiment-docker}
DOCKER=${DOCKER:-docker}
SUITE=bookworm
PACKAGES=python3,python3-venv,python-is-python3,ca-certificates
FORCE=0
[[ ${1:-} == --force ]] && FORCE=1

log() { printf '[base-image] %s\n' "$*" >&2; }

recipe=$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-16)
label=sentiment.base.recipe
tarball="$CACHE_DIR/base-$SUITE-py311-$recipe.tar"

current=$($DOCKER image inspect -f "{{ index .Config.Labels \"$label\" }}" "$BASE_TAG" 2>/dev/null || true)
if [[ $FORCE == 0 && $current == "$recipe" ]]; then
    log "$BASE_TAG is up to date (recipe $recipe)"
    echo "$BASE_TAG"
    exit 0
fi
if [[ $FORCE == 0 && -s $tarball ]]; then
    log "loading $BASE_TAG from $tarball"
    $DOCKER load -q -i "$tarball" >&2
    echo "$BASE_TAG"
    exit 0
fi

# The mirror apt uses for a suite: deb822 *.sources stanzas or one-line sources.list entries.
apt_mirror() {
    local suite=$1 f
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f $f ]] || continue
        awk -v suite="$suite" '
            /^[[:space:]]*$/ { if (uri != "" && hit) { print uri; exit } uri = ""; hit = 0; next }
            /^URIs:/ { uri = $2 }
            /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) hit = 1 }
            END { if (uri != "" && hit) print uri }' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f $f ]] || continue
        awk -v suite="$suite" '$1 == "deb" && $0 !~ /\[/ && $3 == suite { print $2 }
                               $1 == "deb" && $2 ~ /^\[/ && $4 == suite { print $3 }' "$f"
    done
}
MIRROR=${DEBIAN_MIRROR:-$(apt_mirror "$SUITE" | head -n1)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECURITY=${DEBIAN_SECURITY:-$(apt_mirror "$SUITE-security" | head -n1)}
SECURITY=${SECURITY:-http://deb.debian.org/debian-security}

command -v debootstrap >/dev/null || { log "debootstrap is not installed"; exit 1; }
mkdir -p "$CACHE_DIR"
work=$(mktemp -d "$CACHE_DIR/rootfs.XXXXXX")
root="$work/rootfs"
cleanup() {
    mountpoint -q "$root/proc" 2>/dev/null && umount "$root/proc"
    rm -rf "$work"
}
trap cleanup EXIT

log "debootstrap $SUITE from $MIRROR (packages: $PACKAGES)"
nice -n 10 debootstrap --variant=minbase --include="$PACKAGES" --components=main \
    "$SUITE" "$root" "$MIRROR" >"$work/debootstrap.log" 2>&1 || {
    tail -n 30 "$work/debootstrap.log" >&2
    exit 1
}

# Security and point-release updates, then slim it down like the official *-slim images.
cat >"$root/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECURITY $SUITE-security main
EOF
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"   # no services in an image
chmod 755 "$root/usr/sbin/policy-rc.d"
cat >"$root/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF
cat >"$root/etc/apt/apt.conf.d/docker-slim" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
EOF
mount -t proc proc "$root/proc"
log "applying $SUITE-updates and $SUITE-security"
chroot "$root" /bin/sh -c 'export DEBIAN_FRONTEND=noninteractive LC_ALL=C
    apt-get -qq update && apt-get -qq -y upgrade && apt-get -qq clean' >"$work/upgrade.log" 2>&1 || {
    tail -n 30 "$work/upgrade.log" >&2
    exit 1
}
umount "$root/proc"
find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$root"/usr/share/{man,info,locale,lintian}/* "$root"/var/lib/apt/lists/* \
    "$root"/var/cache/apt/*.bin "$root"/var/cache/debconf/*-old "$root"/var/lib/dpkg/*-old \
    "$root"/var/log/* "$root"/tmp/* "$root"/root/.cache
find "$root/usr/lib" -name __pycache__ -type d -prune -exec rm -rf {} +
: >"$root/etc/machine-id"
version=$(chroot "$root" python3 -c 'import platform; print(platform.python_version())')
log "python $version; importing as $BASE_TAG"

tar -C "$root" --numeric-owner -cf - . | $DOCKER import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    --change "LABEL $label=$recipe" \
    --change "LABEL org.opencontainers.image.description=\"Debian $SUITE minbase, Python $version\"" \
    - "$BASE_TAG" >/dev/null

rm -f "$CACHE_DIR"/base-"$SUITE"-py311-*.tar
$DOCKER save -o "$tarball.tmp" "$BASE_TAG" && mv "$tarball.tmp" "$tarball"
log "cached $tarball ($(du -h "$tarball" | cut -f1))"
echo "$BASE_TAG"
