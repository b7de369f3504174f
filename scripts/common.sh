# Shared by the project's scripts: checks and installs what a fresh Debian machine lacks.
# Source it; do not run it.

say() { printf '%s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

# Installs Debian packages that are missing (as root, or through sudo).
ensure_debian_packages() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  say "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >&2
}

# The Rust toolchain comes from rustup; everything else the build needs comes from Debian.
ensure_build_tools() {
  command -v cargo >/dev/null || die "cargo not found: install Rust with rustup (stable toolchain), then re-run"
  ensure_debian_packages build-essential pkg-config libclang-dev libssl-dev
}
