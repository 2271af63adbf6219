# hopper's container image: a Debian bookworm build stage, a small bookworm-slim
# runtime stage holding the server and the two shared libraries it links.
#
#   docker build -t hopper .
#   docker run -d -p 8080:8080 -v hopper-data:/var/lib/hopper hopper
#   docker stop -t 15 <container>    # give the graceful stop time, see STOPSIGNAL
#
# Checked without a Docker engine by tests/docker/ (ctest -L docker): the
# instructions, the runtime packages against the binary's NEEDED libraries,
# the HEALTHCHECK command and the entrypoint contract. See README "Run in a
# container".

# Both stages use this tag. bookworm-slim follows Debian 12's point releases;
# for a reproducible build pin a dated tag or a digest:
#   docker build --build-arg DEBIAN_TAG=bookworm-YYYYMMDD-slim .
ARG DEBIAN_TAG=bookworm-slim

FROM debian:${DEBIAN_TAG} AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        build-essential cmake pkg-config libmicrohttpd-dev libjansson-dev \
        libcurl4-openssl-dev nettle-dev libgnutls28-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Only what the server build reads (.dockerignore keeps the rest out).
COPY CMakeLists.txt ./
COPY core/ core/
COPY server/ server/
RUN cmake -S /src -B /src/build -DCMAKE_BUILD_TYPE=Release \
        -DHOPPER_TESTS=OFF -DHOPPER_BENCH=OFF \
    && cmake --build /src/build --target hopper -j "$(nproc)"

FROM debian:${DEBIAN_TAG}
ARG DEBIAN_TAG
# VERSION is project(hopper VERSION ...) in CMakeLists.txt (checked by the test).
# No licenses or source label: the repository has no licence file and no
# public address yet; add them when it does.
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="hopper" \
      org.opencontainers.image.description="An HTTP message buffer with bounded memory: channels page overflow to disk, a full channel answers 507 with the payload" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.base.name="docker.io/library/debian:${DEBIAN_TAG}"
# The runtime libraries: hopper's NEEDED entries are libmicrohttpd.so.12,
# libjansson.so.4, libcurl.so.4 (forwarding), libnettle.so.8 (signatures),
# libgnutls.so.30 (checking --tls-cert/--tls-key) and libc.so.6 (objdump -p
# build/server/hopper | grep NEEDED); dpkg -S maps them to libmicrohttpd12,
# libjansson4, libcurl4, libnettle8, libgnutls30 and libc6 (in the base
# image). apt pulls what those depend on (OpenSSL, and their libraries);
# ca-certificates is the system CA store that https forwarding trusts.
# tests/docker/check_runtime_libs.sh checks this line against the binary.
# The uid/gid 10001 is fixed so volumes and Kubernetes' runAsUser/fsGroup can
# name it; hopper refuses a data dir owned by any other uid (server/datadir.c).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libmicrohttpd12 libjansson4 libcurl4 \
        libnettle8 libgnutls30 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 hopper \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /var/lib/hopper --shell /usr/sbin/nologin hopper \
    && install -d -o 10001 -g 10001 -m 0700 /var/lib/hopper
COPY --from=build /src/build/server/hopper /usr/local/bin/hopper

# A fresh named volume is filled from the image, ownership included, so it
# starts owned by 10001. A bind mount must be chowned: chown 10001:10001 DIR.
VOLUME ["/var/lib/hopper"]
ENV HOPPER_LISTEN=0.0.0.0:8080 \
    HOPPER_DATA_DIR=/var/lib/hopper
EXPOSE 8080

# No curl in the image: bash is Essential in Debian (so in bookworm-slim), and
# its /dev/tcp speaks enough HTTP/1.0 for /healthz. The port comes from
# HOPPER_LISTEN at check time, so a changed HOPPER_LISTEN is followed; the
# host is 127.0.0.1, which reaches 0.0.0.0:PORT, 127.0.0.1:PORT and (Linux
# dual stack) [::]:PORT, but not a listen address bound to one other IP. Set
# the port with HOPPER_LISTEN, not with a --listen argument: the check cannot
# see arguments. Shell form: Docker runs it with /bin/sh -c, and so does
# tests/docker/check_entrypoint.sh, on this exact text.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD exec bash -c 'exec 3<>/dev/tcp/127.0.0.1/${HOPPER_LISTEN##*:} && printf "GET /healthz HTTP/1.0\r\n\r\n" >&3 && read -r -t 2 status <&3 && [[ $status == "HTTP/1."?" 200 "* ]]'

# SIGTERM stops hopper gracefully: it answers waiting GETs, lets requests in
# flight finish for up to 5 s (SHUTDOWN_DRAIN_MS in server/main.c), writes what
# memory holds to the volume and exits 0 (1 if that write failed). Give it at
# least 10 s before SIGKILL: docker stop -t 15, compose stop_grace_period: 15s,
# Kubernetes terminationGracePeriodSeconds: 30 (its default). hopper waits for
# the signal with sigtimedwait, which works as PID 1, so no init is needed.
STOPSIGNAL SIGTERM
USER 10001:10001
ENTRYPOINT ["/usr/local/bin/hopper"]
