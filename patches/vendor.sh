#!/usr/bin/env bash
# The vendored crates under patches/, made from the registry's crates plus our diffs.
#
#   patches/vendor.sh check     the trees equal what the registry crates plus the diffs make
#                               (CI runs this); exit 1 and the differences when not
#   patches/vendor.sh rebuild   rewrite the trees from the registry crates and the diffs
#   patches/vendor.sh diff      rewrite patches/<crate>.diff from the edited tree
#
# For each crate: the .crate file from crates.io (cargo's download cache first, else
# static.crates.io with curl), unpacked; the paths listed in patches/<crate>.prune removed; then
# patches/<crate>.diff applied with `patch -p1`. See patches/PATCH.md for upgrading.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
CRATES=("tokio 1.54.1" "turmoil 0.7.2")

fetch() { # name version dest-dir: the pristine crate unpacked into dest-dir/name
  local name=$1 version=$2 dest=$3 file
  file=$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/"$name-$version.crate" 2>/dev/null | head -1 || true)
  if [ -z "$file" ]; then
    file="$dest/$name-$version.crate"
    curl -sSfL --retry 3 -o "$file" "https://static.crates.io/crates/$name/$name-$version.crate"
  fi
  tar -xzf "$file" -C "$dest"
  mv "$dest/$name-$version" "$dest/$name"
}

pruned() { # name version dest-dir: the pristine crate with the pruned paths removed
  local name=$1
  fetch "$@"
  while IFS= read -r path; do
    case "$path" in ''|'#'*) continue ;; esac
    rm -rf "${3:?}/$name/$path"
  done < "$here/$name.prune"
}

made() { # name version dest-dir: what the script makes of the crate
  pruned "$@"
  (cd "$3/$1" && patch -s -p1 --no-backup-if-mismatch < "$here/$1.diff")
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
for crate in "${CRATES[@]}"; do
  read -r name version <<< "$crate"
  case "${1:-check}" in
    check)
      made "$name" "$version" "$work"
      if ! diff -r "$work/$name" "$here/$name" > "$work/$name.out"; then
        echo "patches/$name differs from crates.io's $name $version plus patches/$name.diff:"
        head -50 "$work/$name.out"
        echo "(edited the tree? run patches/vendor.sh diff and commit the diff)"
        status=1
      else
        echo "patches/$name: crates.io's $name $version plus patches/$name.diff"
      fi
      ;;
    rebuild)
      made "$name" "$version" "$work"
      rm -rf "${here:?}/$name"
      cp -a "$work/$name" "$here/$name"
      echo "patches/$name rebuilt from $name $version"
      ;;
    diff)
      pruned "$name" "$version" "$work"
      (cd "$work" && mv "$name" a && cp -a "$here/$name" b && { diff -ruN a b || true; } > "$here/$name.diff")
      rm -rf "${work:?}/a" "${work:?}/b"
      echo "patches/$name.diff: $(grep -c '^+++ ' "$here/$name.diff") files"
      ;;
    *)
      echo "usage: patches/vendor.sh [check|rebuild|diff]" >&2
      exit 2
      ;;
  esac
done
exit $status
