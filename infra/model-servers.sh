#!/usr/bin/env bash
# The model servers that the scoring tests call for real, each in a venv of its own
# (their pins clash with Vahini's and with each other's):
#   - Seldon MLServer with its scikit-learn runtime;
#   - NVIDIA Triton through PyTriton, whose wheel ships the server (it runs on CPU here).
# The tests start and stop the servers themselves; this only installs them.
#   infra/model-servers.sh install        make both venvs (idempotent)
#   infra/model-servers.sh python NAME    print the venv's python for NAME (mlserver|triton)
SERVICE=model-servers
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# uvloop 0.22 breaks MLServer 1.7.1's event loop at start (MLServer issue #2286).
MLSERVER_PACKAGES=(mlserver==1.7.1 mlserver-sklearn==1.7.1 'uvloop<0.22' 'scikit-learn>=1.5,<2')
TRITON_PACKAGES=(nvidia-pytriton==0.7.0)

venv_dir() { echo "$VAHINI_INFRA_HOME/$1/venv"; }

# make_venv NAME PYTHON PACKAGES...: a venv with exactly these pins, rebuilt when they change.
make_venv() {
  local name="$1" python="$2"; shift 2
  local dir; dir="$(venv_dir "$name")"
  local want; want="$(printf '%s\n' "$python" "$@")"
  if [[ -f "$dir/.installed" && "$(cat "$dir/.installed")" == "$want" ]]; then return 0; fi
  log "installing $name into $dir"
  rm -rf "$dir"
  "$python" -m venv "$dir" || die "$python -m venv failed (Debian: apt-get install python3-venv)"
  retry 3 "$dir/bin/pip" install -q --upgrade pip
  retry 3 "$dir/bin/pip" install -q "$@" || die "pip install $* failed"
  echo "$want" >"$dir/.installed"
}

do_install() {
  apt_install python3-venv libpython3.11
  make_venv mlserver "${PYTHON:-python3}" "${MLSERVER_PACKAGES[@]}"
  # Triton's Python backend loads the system libpython3.11: a venv of another build of 3.11
  # (pyenv's) fails to load models ('_thread.RLock' object has no attribute '_recursion_count').
  make_venv triton /usr/bin/python3 "${TRITON_PACKAGES[@]}"
}

case "${1:-}" in
  install) do_install ;;
  python) echo "$(venv_dir "${2:?usage: $0 python mlserver|triton}")/bin/python" ;;
  *) echo "usage: $0 install | python mlserver|triton" >&2; exit 2 ;;
esac
