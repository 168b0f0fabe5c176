# Sourced by scripts/tools/build-*: where tools are cached, and small helpers.
# RATLINE_TOOLS_DIR (default ~/.cache/ratline/tools) holds NAME-VERSION/ directories and
# bin/ with a link per binary; a build that finds its version there returns at once.
set -euo pipefail
TOOLS_DIR=${RATLINE_TOOLS_DIR:-$HOME/.cache/ratline/tools}
mkdir -p "$TOOLS_DIR/bin"
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}

# have NAME-VERSION: true when that version was built completely (its .done marker exists).
have() { [ -f "$TOOLS_DIR/$1/.done" ]; }

# link NAME-VERSION BINARY...: point $TOOLS_DIR/bin/BINARY at NAME-VERSION/BINARY.
link() {
  local dir=$1; shift
  for b in "$@"; do ln -sfn "$TOOLS_DIR/$dir/$b" "$TOOLS_DIR/bin/$b"; done
}
