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

# go_wrapper_module MODULE VERSION LOCAL_VERSION: make the current (empty) directory a Go
# module that requires MODULE@VERSION and replaces each module MODULE's go.mod both requires
# and replaces with a local path (Kubernetes' staging modules, etcd's siblings) by its
# published tag LOCAL_VERSION. Replaces of modules MODULE does not require (Kubernetes'
# sample-* modules, absent from the proxy) are skipped; its other replaces are carried over.
# This is how `go build` can build a main package of a module whose go.mod points inside its
# own repository, which `go install MODULE@VERSION` refuses.
go_wrapper_module() {
  local module=$1 version=$2 local_version=$3 gomod
  "$GO" mod init ratline.local/build-wrapper >/dev/null 2>&1
  gomod=$("$GO" mod download -json "$module@$version" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
  local edits
  edits=$("$GO" mod edit -json "$gomod" | python3 -c '
import json, sys
mod = json.load(sys.stdin)
local_version = sys.argv[1]
required = {r["Path"] for r in mod.get("Require") or []}
for rep in mod.get("Replace") or []:
    old, new = rep["Old"]["Path"], rep["New"]
    if new["Path"].startswith((".", "/")):
        if old in required:
            print(f"-replace={old}={old}@{local_version}")
    else:
        print("-replace=%s=%s@%s" % (old, new["Path"], new["Version"]))
' "$local_version")
  # shellcheck disable=SC2086
  "$GO" mod edit -require="$module@$version" $edits
}
