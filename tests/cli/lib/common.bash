# Shared preamble of the CLI tests (tests/cli/*.sh), each run by ctest as
#   bash SCRIPT KVLAB_BIN SOURCE_DIR
# Source it right after `set ...`:
#   source "$(dirname "${BASH_SOURCE[0]}")/lib/common.bash" "$@"
# It sets KVLAB (the kvlab binary), SRC (the source dir, may be empty), TMP
# (a fresh directory removed on exit) and defines fail MESSAGE.
# (Not named *.sh, so tests/CMakeLists.txt does not register it as a test.)
KVLAB=${1:?usage: $(basename "$0") KVLAB_BIN SOURCE_DIR}
SRC=${2:-}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
