#!/bin/sh
# The installed `tapegrad` command runs from a prefix other than the configured one, and after
# the whole prefix is moved: it finds its library and the bundled data set from its own place.
#
#   sh tests/test_install_cli.sh path/to/build
set -u
TMP=$(mktemp -d "${TMPDIR:-/tmp}/tapegrad-install.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT
cmake --install "$1" --prefix "$TMP/first" >/dev/null || exit 1
mv "$TMP/first" "$TMP/moved" || exit 1
unset TAPEGRAD_DATA_DIR LD_LIBRARY_PATH
out=$("$TMP/moved/bin/tapegrad" train --json --quiet) || {
    echo "FAIL: the installed tapegrad did not run"
    exit 1
}
case $out in
*"\"data\":\"$TMP/moved/"*"/tapegrad/placement.csv\""*) echo "ok" ;;
*)
    echo "FAIL: the installed tapegrad did not train on its installed data: $out"
    exit 1
    ;;
esac
