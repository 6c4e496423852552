# Sourced by the other scripts: puts rustup's cargo on PATH when a non-login shell
# (CI, sudo, ssh -c, env -i) left ~/.cargo/bin out. Never installs anything.
if ! command -v cargo >/dev/null 2>&1; then
    : "${HOME:=$(getent passwd "$(id -u)" | cut -d: -f6)}"
    export HOME
    if [[ -f "$HOME/.cargo/env" ]]; then
        # shellcheck source=/dev/null
        . "$HOME/.cargo/env"
    fi
fi
