#!/bin/sh
# check_runtime_libs.sh - every shared library the hopper binary needs comes
# from a package the Dockerfile's runtime stage installs, or from libc6 (in
# every Debian base image), and the libraries those pull in come from their
# dependencies. Mapped on this machine with dpkg, so it holds for the image
# when this machine runs the same Debian release as its base (bookworm).
#
#   check_runtime_libs.sh DOCKERFILE HOPPER_BINARY
#
# Then shows the check has teeth: with each runtime package left out in turn,
# it must fail.
set -u
dockerfile=$1 binary=$2
. "$(dirname "$0")/lib.sh"

. /etc/os-release
[ "${VERSION_CODENAME:-}" = bookworm ] ||
    echo "note: this machine runs ${PRETTY_NAME:-an unknown system}, the image bookworm: package names may differ"

# the runtime stage's apt-get install arguments that are not options
packages=$(final_stage "$dockerfile" | grep '^RUN ' | grep 'apt-get install' |
    sed 's/.*apt-get install//; s/&&.*//' | tr ' ' '\n' | grep -v '^-' | grep -v '^$')
echo "runtime stage installs: $(echo "$packages" | tr '\n' ' ')"
[ -n "$packages" ] || { echo "FAIL: no apt-get install in the runtime stage"; exit 1; }

package_of() { # the package owning a library file (path as ldd prints it)
    dpkg -S "$1" 2>/dev/null || dpkg -S "$(readlink -f "$1")" 2>/dev/null ||
        dpkg -S "/usr$1" 2>/dev/null
}
# closure PACKAGES: the packages and everything they (pre-)depend on, recursively
closure() {
    todo=$1 seen=""
    while [ -n "$todo" ]; do
        next=""
        for p in $todo; do
            case " $seen " in *" $p "*) continue ;; esac
            seen="$seen $p"
            deps=$(dpkg-query -W -f='${Depends}, ${Pre-Depends}' "$p" 2>/dev/null |
                sed 's/[,|]/\n/g' | sed 's/([^)]*)//; s/:any//; s/ //g' | grep -v '^$')
            next="$next $deps"
        done
        todo=$next
    done
    echo "$seen"
}

needed=$(objdump -p "$binary" | awk '$1 == "NEEDED" { print $2 }')
[ -n "$needed" ] || { echo "FAIL: no NEEDED entries in $binary"; exit 1; }
resolved=$(ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }')

# check PACKAGES: 0 if the binary's libraries are all covered
check() {
    _ok=0
    _allowed="libc6 $1"
    for lib in $needed; do
        path=$(echo "$resolved" | awk -v l="$lib" '$1 == l { print $2 }')
        pkg=$(package_of "$path" | head -n 1 | cut -d: -f1)
        case " $(echo "$_allowed" | tr '\n' ' ') " in
        *" $pkg "*) echo "  NEEDED $lib: $path from $pkg" ;;
        *) echo "  FAIL: NEEDED $lib ($path) is in package '${pkg:-none}', which the runtime stage does not install"; _ok=1 ;;
        esac
    done
    _closure=$(closure "$_allowed")
    for lib in $(echo "$resolved" | awk '{ print $1 }'); do
        echo "$needed" | grep -qx "$lib" && continue
        path=$(echo "$resolved" | awk -v l="$lib" '$1 == l { print $2 }')
        pkg=$(package_of "$path" | head -n 1 | cut -d: -f1)
        case " $_closure " in
        *" $pkg "*) echo "  indirect $lib: $pkg, a dependency of the installed ones" ;;
        *) echo "  FAIL: indirect $lib ($path, ${pkg:-no package}) comes with no installed package"; _ok=1 ;;
        esac
    done
    return $_ok
}

if ! check "$packages"; then
    echo "FAIL: the runtime stage misses libraries hopper needs"
    exit 1
fi
# Packages the image installs for what they hold, not for a library:
# ca-certificates is the CA store that https forwarding trusts.
data_packages="ca-certificates"
for leave_out in $packages; do
    case " $data_packages " in *" $leave_out "*)
        echo "$leave_out is data (not a library): not left out"
        continue ;;
    esac
    if check "$(echo "$packages" | grep -vx "$leave_out")" >/dev/null; then
        echo "FAIL: without $leave_out the check still passes: the package is not needed, or the check is broken"
        exit 1
    fi
    echo "without $leave_out the check fails, as it must"
done
echo "ok: every library hopper needs comes with the runtime stage's packages"
