#!/bin/sh
# Install the library from a build tree into a temporary prefix, then build
# and run embed.c with nothing but pkg-config's flags: the header, the
# static library and hopper.pc are enough to embed hopper.
#   check_install.sh BUILD_DIR SOURCE_DIR CC [SANITIZER_FLAGS]
set -eu
build=$1 src=$2 cc=$3 extra=${4:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" --component Unspecified >/dev/null
pc=$(dirname "$(find "$tmp/prefix" -name hopper.pc)")
flags=$(PKG_CONFIG_PATH=$pc pkg-config --cflags --libs --static hopper)
"$cc" -std=c11 $extra -o "$tmp/embed" "$src/embed.c" $flags
"$tmp/embed" "$tmp/data"
