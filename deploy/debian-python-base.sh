#!/usr/bin/env bash
# A Python base image made from Debian's package archive, for a machine that reaches Debian's mirror but
# no container registry (`make image-base`; docs/deploy.md). Its Python is Debian's (/usr/bin/python3:
# 3.11 on bookworm, like python:3.11-slim-bookworm), installed with venv, pip and CA certificates.
# Needs root, debootstrap, and podman or docker to import the result.
set -euo pipefail
tag=${1:?usage: debian-python-base.sh TAG [SUITE] [MIRROR]}
suite=${2:-bookworm}
mirror=${3:-http://deb.debian.org/debian}
tool=${CONTAINER_TOOL:-podman}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates "$suite" "$root" "$mirror"
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin
tar -C "$root" -c . | "$tool" import --change 'CMD ["python3"]' - "$tag"
