#!/bin/sh
# check_dockerfile_mutants.sh - shows that check_dockerfile.sh catches what it
# claims to: each mutant is a copy of the Dockerfile (or .dockerignore) with
# one sed edit, and check_dockerfile.sh must fail on it with the expected
# message. The unedited files must pass first. (Single quotes keep the sed
# scripts' $ from the shell.)
# shellcheck disable=SC2016
#   check_dockerfile_mutants.sh DOCKERFILE DOCKERIGNORE CMAKELISTS
set -u
here=$(cd "$(dirname "$0")" && pwd)
dockerfile=$1 dockerignore=$2 cmakelists=$3
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
bad=0 n=0

# mutant FILE SED EXPECTED: edit FILE's copy (dockerfile|dockerignore) with
# SED; the check must fail and print EXPECTED.
mutant() {
    cp "$dockerfile" "$tmp/Dockerfile"
    cp "$dockerignore" "$tmp/dockerignore"
    sed -i "$2" "$tmp/$1"
    n=$((n + 1))
    if cmp -s "$tmp/Dockerfile" "$dockerfile" && cmp -s "$tmp/dockerignore" "$dockerignore"; then
        echo "MUTANT $n ($2) changed nothing: fix the test"
        bad=$((bad + 1))
        return
    fi
    out=$(sh "$here/check_dockerfile.sh" "$tmp/Dockerfile" "$tmp/dockerignore" "$cmakelists" 2>&1)
    status=$?
    if [ $status -eq 0 ] || ! printf '%s\n' "$out" | grep -qF -- "$3"; then
        echo "MUTANT $n NOT CAUGHT ($2), expected '$3'; output:"
        printf '%s\n' "$out"
        bad=$((bad + 1))
    else
        echo "caught mutant $n: $2 -> $(printf '%s\n' "$out" | grep -F -- "$3" | head -n 1)"
    fi
}

out=$(sh "$here/check_dockerfile.sh" "$dockerfile" "$dockerignore" "$cmakelists") ||
    { printf '%s\n' "$out"; echo "the unedited Dockerfile fails"; exit 1; }

mutant Dockerfile 's/^ARG DEBIAN_TAG=bookworm-slim/ARG DEBIAN_TAG=latest/' "debian:bookworm with a pinned tag"
mutant Dockerfile 's/^ARG DEBIAN_TAG=bookworm-slim/ARG DEBIAN_TAG=bookworm/' "runtime (last) stage is bookworm-slim"
mutant Dockerfile 's/^FROM debian:\${DEBIAN_TAG} AS build/FROM ubuntu:22.04 AS build/' "debian:bookworm with a pinned tag"
mutant Dockerfile '/^FROM debian:\${DEBIAN_TAG} AS build/d' "multi-stage build"
mutant Dockerfile 's/COPY --from=build/COPY --from=builder/' "COPY --from names a build stage"
mutant Dockerfile 's/install -y --no-install-recommends libmicrohttpd12/install -y libmicrohttpd12/' "lacks '--no-install-recommends'"
mutant Dockerfile '0,/rm -rf \/var\/lib\/apt\/lists\/\*/s/&& rm -rf \/var\/lib\/apt\/lists\/\*//' "lacks 'rm -rf /var/lib/apt/lists/*'"
mutant Dockerfile 's/^WORKDIR \/src/RUN apt-get update/' "no apt-get update in a RUN without"
mutant Dockerfile 's/^WORKDIR \/src/RUN cd \/src \&\& true/' "no cd in RUN"
mutant Dockerfile 's/^WORKDIR \/src/ADD https:\/\/example.com\/x.tar.gz \/src/' "no ADD"
mutant Dockerfile 's/^USER 10001:10001/USER root/' "USER is not root"
mutant Dockerfile '/^USER /d' "a USER in the runtime stage"
mutant Dockerfile '/^USER /d; $a USER 10001:10001' "USER comes before ENTRYPOINT"
mutant Dockerfile 's/^ENTRYPOINT .*/ENTRYPOINT \/usr\/local\/bin\/hopper/' "ENTRYPOINT in JSON form"
mutant Dockerfile '$a CMD --memory-bytes 16MiB' "CMD, if any, in JSON form"
mutant Dockerfile 's/GET \/healthz/GET \/status/' "HEALTHCHECK on /healthz"
mutant Dockerfile '/^HEALTHCHECK/,/CMD exec/d' "HEALTHCHECK on /healthz"
mutant Dockerfile 's/^STOPSIGNAL SIGTERM/STOPSIGNAL SIGKILL/' "STOPSIGNAL SIGTERM"
mutant Dockerfile 's/^EXPOSE 8080/EXPOSE 9090/' "EXPOSE 8080"
mutant Dockerfile 's/HOPPER_LISTEN=0.0.0.0:8080/HOPPER_LISTEN=127.0.0.1:8080/' "HOPPER_LISTEN=0.0.0.0:8080"
mutant Dockerfile '/^VOLUME/d' "VOLUME of HOPPER_DATA_DIR"
mutant Dockerfile 's/HOPPER_DATA_DIR=\/var\/lib\/hopper/HOPPER_DATA_DIR=\/data/' "VOLUME of HOPPER_DATA_DIR"
mutant Dockerfile '/org.opencontainers.image.title=/d' "LABEL org.opencontainers.image.title"
mutant Dockerfile 's/^ARG VERSION=0.1.0/ARG VERSION=9.9.9/' "ARG VERSION (9.9.9) equals"
mutant dockerignore '/^\*$/d' ".dockerignore starts by ignoring everything"
mutant dockerignore '/^!server/d' "COPY source server/ is not let back in"

if [ $bad -gt 0 ]; then
    echo "$bad of $n mutants not caught"
    exit 1
fi
echo "ok: all $n mutants caught"
