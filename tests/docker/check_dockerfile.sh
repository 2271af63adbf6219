#!/bin/sh
# check_dockerfile.sh - a lint of the Dockerfile's instructions, standing in
# for hadolint: hadolint is not in Debian bookworm (apt-cache policy hadolint
# finds nothing) and the npm package named hadolint downloads the binary from
# GitHub when first run, which this project's machines cannot reach.
#
#   check_dockerfile.sh DOCKERFILE DOCKERIGNORE CMAKELISTS
#
# Checks (each failure prints "FAIL: ..."; exit 1 if any failed, else prints
# "ok: N checks"):
#   - multi-stage: at least two FROM; every base is debian with a bookworm tag
#     (ARG defaults resolved), never untagged or :latest; the runtime stage is
#     -slim; COPY --from names an earlier stage
#   - apt-get: every install has -y and --no-install-recommends, and its RUN
#     also runs apt-get update and removes /var/lib/apt/lists/* (hadolint
#     DL3009, DL3015); no apt-get upgrade, no sudo, no cd in RUN (WORKDIR)
#   - no ADD (COPY says what it does; ADD of a URL fetches at build time)
#   - the runtime stage: a USER that is not root, before ENTRYPOINT;
#     HEALTHCHECK on /healthz; VOLUME of the data dir; ENV HOPPER_LISTEN=
#     0.0.0.0:8080 and HOPPER_DATA_DIR equal to that VOLUME; EXPOSE 8080;
#     STOPSIGNAL SIGTERM; ENTRYPOINT (and CMD, if any) in JSON form; OCI
#     labels title, description and version, the version equal to
#     project(hopper VERSION ...) of CMakeLists.txt
#   - .dockerignore ignores everything (*) and lets back in every path the
#     Dockerfile COPYs from the context
set -u
dockerfile=$1 dockerignore=$2 cmakelists=$3
. "$(dirname "$0")/lib.sh"

failures=0 checks=0
check() { # check DESCRIPTION COMMAND...: run COMMAND, count a failure
    _what=$1
    shift
    checks=$((checks + 1))
    if ! "$@"; then
        echo "FAIL: $_what"
        failures=$((failures + 1))
    fi
}
has() { printf '%s\n' "$all" | grep -Eq "$1"; }
final_has() { printf '%s\n' "$final" | grep -Eq "$1"; }
none_in() { ! printf '%s\n' "$2" | grep -Eq "$1"; } # none_in REGEX TEXT

all=$(dockerfile_instructions "$dockerfile")
final=$(final_stage "$dockerfile")

# --- stages and base images ---
# ARG defaults declared before the first FROM, as NAME=VALUE lines
global_args=$(printf '%s\n' "$all" | awk 'toupper($1) == "FROM" { exit } toupper($1) == "ARG" { print $2 }')
resolve() { # expand ${NAME} and $NAME from the global ARG defaults
    _s=$1
    for _a in $global_args; do
        _n=${_a%%=*} _v=${_a#*=}
        [ "$_n" = "$_a" ] && continue
        _s=$(printf '%s' "$_s" | sed "s|\${$_n}|$_v|g; s|\$$_n\\b|$_v|g")
    done
    printf '%s' "$_s"
}
stages=$(printf '%s\n' "$all" | awk 'toupper($1) == "FROM"' | wc -l)
check "multi-stage build: at least 2 FROM, found $stages" [ "$stages" -ge 2 ]
bases_ok=true slim_ok=false
for image in $(printf '%s\n' "$all" | awk 'toupper($1) == "FROM" { for (i = 2; i <= NF; i++) if ($i !~ /^--/) { print $i; break } }'); do
    resolved=$(resolve "$image")
    case $resolved in
    debian:bookworm*) ;;
    *) echo "  base $image (= $resolved) is not debian:bookworm..."; bases_ok=false ;;
    esac
    tag=${resolved#*:}
    if [ "$tag" = "$resolved" ] || [ "${tag%%@*}" = latest ]; then
        echo "  base $image (= $resolved) has no pinned tag"
        bases_ok=false
    fi
    case $resolved in *-slim | *-slim@*) slim_ok=true ;; *) slim_ok=false ;; esac
done
check "every base image is debian:bookworm with a pinned tag" $bases_ok
check "the runtime (last) stage is bookworm-slim" $slim_ok
stage_names=$(printf '%s\n' "$all" | awk 'toupper($1) == "FROM" && toupper($(NF-1)) == "AS" { print $NF }')
from_ok=true
for src in $(printf '%s\n' "$all" | sed -n 's/^COPY .*--from=\([^ ]*\).*/\1/p'); do
    printf '%s\n' "$stage_names" | grep -qx "$src" || { echo "  COPY --from=$src names no stage"; from_ok=false; }
done
check "COPY --from names a build stage" $from_ok

# --- RUN hygiene ---
runs=$(printf '%s\n' "$all" | grep -E '^RUN ')
apt_ok=true
while IFS= read -r run; do
    case $run in *"apt-get install"*) ;; *) continue ;; esac
    for need in "apt-get update" "--no-install-recommends" " -y" "rm -rf /var/lib/apt/lists/*"; do
        case $run in *"$need"*) ;; *) echo "  a RUN with apt-get install lacks '$need'"; apt_ok=false ;; esac
    done
done <<RUNS
$runs
RUNS
check "apt-get install with -y, --no-install-recommends, update and list cleanup in one RUN" $apt_ok
update_alone=$(printf '%s\n' "$runs" | grep 'apt-get update' | grep -vc 'apt-get install')
check "no apt-get update in a RUN without apt-get install" [ "$update_alone" -eq 0 ]
check "no apt-get upgrade / dist-upgrade" none_in 'apt-get (dist-)?upgrade' "$runs"
check "no sudo in RUN" none_in '(^RUN |&& |; )sudo ' "$runs"
check "no cd in RUN (use WORKDIR)" none_in '(^RUN |&& |; )cd ' "$runs"
check "no ADD (use COPY; never fetch URLs at build time)" none_in '^[Aa][Dd][Dd] ' "$all"

# --- the runtime stage ---
user_line=$(printf '%s\n' "$final" | grep -n '^USER ' | tail -n 1)
entry_line=$(printf '%s\n' "$final" | grep -n '^ENTRYPOINT ' | tail -n 1)
user=$(printf '%s' "${user_line#*:}" | awk '{ print $2 }')
check "a USER in the runtime stage" [ -n "$user" ]
case ${user%%:*} in root | 0 | "") user_ok=false ;; *) user_ok=true ;; esac
check "USER is not root (found '${user:-none}')" $user_ok
user_first() { [ -n "$entry_line" ] && [ -n "$user_line" ] && [ "${user_line%%:*}" -lt "${entry_line%%:*}" ]; }
check "USER comes before ENTRYPOINT" user_first
check "ENTRYPOINT in JSON form" final_has '^ENTRYPOINT \['
check "CMD, if any, in JSON form" none_in '^CMD [^[]' "$final"
check "HEALTHCHECK on /healthz" final_has '^HEALTHCHECK .*CMD .*/healthz'
check "STOPSIGNAL SIGTERM" final_has '^STOPSIGNAL SIGTERM$'
check "EXPOSE 8080" final_has '^EXPOSE (.* )?8080(/tcp)?( |$)'
check "ENV HOPPER_LISTEN=0.0.0.0:8080" final_has '^ENV .*HOPPER_LISTEN=0\.0\.0\.0:8080( |$)'
data_dir=$(printf '%s\n' "$final" | sed -n 's/^ENV .*HOPPER_DATA_DIR=\([^ ]*\).*/\1/p')
check "ENV HOPPER_DATA_DIR set" [ -n "$data_dir" ]
check "VOLUME of HOPPER_DATA_DIR ($data_dir)" final_has "^VOLUME .*\"?$data_dir\"?"
for label in title description version; do
    check "LABEL org.opencontainers.image.$label" final_has "^LABEL .*org\.opencontainers\.image\.$label="
done
project_version=$(sed -n 's/^project(hopper VERSION \([0-9.]*\).*/\1/p' "$cmakelists")
image_version=$(printf '%s\n' "$final" | sed -n 's/^ARG VERSION=\([^ ]*\)$/\1/p')
same_version() { [ -n "$project_version" ] && [ "$image_version" = "$project_version" ]; }
check "ARG VERSION ($image_version) equals CMakeLists.txt's ($project_version)" same_version

# --- .dockerignore ---
first_pattern=$(grep -v '^#' "$dockerignore" | grep -v '^$' | head -n 1)
check ".dockerignore starts by ignoring everything (*)" [ "$first_pattern" = "*" ]
ignore_ok=true
for src in $(printf '%s\n' "$all" | grep -E '^COPY ' | grep -v -- '--from=' | awk '{ for (i = 2; i < NF; i++) if ($i !~ /^--/) print $i }'); do
    grep -qx "!${src%/}/\{0,1\}" "$dockerignore" || { echo "  COPY source $src is not let back in by .dockerignore"; ignore_ok=false; }
done
check ".dockerignore lets in every COPY source" $ignore_ok

if [ "$failures" -gt 0 ]; then
    echo "$failures of $checks checks failed"
    exit 1
fi
echo "ok: $checks checks"
