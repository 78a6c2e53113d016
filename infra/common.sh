# Shared helpers for the infra scripts. Sourced, never executed.
# Every service is installed under one cache directory and runs on loopback.
set -euo pipefail

INFRA_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VAHINI_INFRA_HOME="${VAHINI_INFRA_HOME:-$HOME/.cache/vahini-infra}"
RUN_DIR="$VAHINI_INFRA_HOME/run"
LOG_DIR="$VAHINI_INFRA_HOME/logs"
mkdir -p "$RUN_DIR" "$LOG_DIR"

log() { printf '[infra %s] %s\n' "$SERVICE" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# not_healthy: a service that did not come up says why, in CI's output too, not only in its log.
not_healthy() {
  log "did not become healthy; the last lines of $LOG_DIR/$SERVICE.log:"
  tail -n 40 "$LOG_DIR/$SERVICE.log" 2>/dev/null | cut -c1-300 >&2 || true
  die "$SERVICE did not become healthy; see $LOG_DIR/$SERVICE.log"
}

pid_file() { echo "$RUN_DIR/$SERVICE.pid"; }

is_running() {
  local pf; pf="$(pid_file)"
  [[ -f "$pf" ]] && kill -0 "$(cat "$pf")" 2>/dev/null
}

# port_open PORT [HOST]: something accepts connections there (HOST defaults to 127.0.0.1).
port_open() { (exec 3<>"/dev/tcp/${2:-127.0.0.1}/$1") 2>/dev/null; }

# wait_until SECONDS CMD...: poll CMD once a second until it succeeds.
wait_until() {
  local deadline=$(( SECONDS + $1 )); shift
  until "$@"; do
    if (( SECONDS >= deadline )); then return 1; fi
    if ! is_running; then log "process exited; last log lines:"; tail -n 30 "$LOG_DIR/$SERVICE.log" >&2 || true; return 1; fi
    sleep 1
  done
}

# start_daemon CMD...: run CMD detached, its output in the service log, its pid recorded.
start_daemon() {
  nohup setsid "$@" >"$LOG_DIR/$SERVICE.log" 2>&1 < /dev/null &
  echo $! >"$(pid_file)"
}

stop_daemon() {
  local pf; pf="$(pid_file)"
  if ! is_running; then rm -f "$pf"; log "not running"; return 0; fi
  local pid; pid="$(cat "$pf")"
  # setsid made the service its own process group: signal the group, children included.
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
  kill -0 "$pid" 2>/dev/null && { kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid"; } 2>/dev/null || true
  rm -f "$pf"
  log "stopped"
}

# retry N CMD...: network installs fail transiently; try a few times before giving up.
retry() {
  local attempts="$1"; shift
  for ((i = 1; i <= attempts; i++)); do
    "$@" && return 0
    (( i < attempts )) && { log "attempt $i of $attempts failed: $*; retrying in $((i * 5)) s"; sleep $((i * 5)); }
  done
  return 1
}

apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  (( ${#missing[@]} == 0 )) && return 0
  log "apt-get install ${missing[*]}"
  local sudo=""; [[ $EUID -ne 0 ]] && sudo="sudo"
  retry 3 $sudo apt-get update -qq
  retry 3 env DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# maven_fetch NAME: resolve infra/maven/NAME/pom.xml's runtime classpath into the cache.
maven_fetch() {
  local name="$1" lib="$VAHINI_INFRA_HOME/$1/lib"
  if [[ -f "$lib/.complete" ]] && cmp -s "$INFRA_DIR/maven/$name/pom.xml" "$lib/.complete"; then return 0; fi
  command -v mvn >/dev/null || apt_install maven
  log "fetching jars from Maven Central into $lib"
  rm -rf "$lib"; mkdir -p "$lib"
  retry 3 mvn -q -B -f "$INFRA_DIR/maven/$name/pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$lib" >&2
  cp "$INFRA_DIR/maven/$name/pom.xml" "$lib/.complete"
}

# loopback_tls DIR NAME CA_NAME: a CA of its own in DIR/ca.pem, and DIR/NAME.key and
# DIR/NAME.crt signed by it for 127.0.0.1 and localhost (the services' test certificates).
loopback_tls() {
  local dir="$1" name="$2" ca_name="$3"
  mkdir -p "$dir"
  (cd "$dir" &&
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 3650 -subj "/CN=$ca_name" &&
    openssl req -newkey rsa:2048 -nodes -keyout "$name.key" -out "$name.csr" -subj "/CN=127.0.0.1" &&
    printf "subjectAltName=IP:127.0.0.1,DNS:localhost\n" >"$name.ext" &&
    openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -out "$name.crt" -days 3650 \
      -extfile "$name.ext") >/dev/null 2>&1 || die "openssl failed making $dir"
}

dispatch() {
  case "${1:-}" in
    install) do_install ;;
    # A healthy service on the port is used as it is, even one this script did not start.
    start) do_install; if do_health; then log "already running"; else do_start; fi ;;
    health) do_health && log "healthy" ;;
    stop) stop_daemon ;;
    # Stop and forget every stored byte: the next start is a fresh install's. Test runs
    # begin here, since state left by earlier runs (e.g. thousands of test topics) slows
    # a start down past its deadline.
    reset) stop_daemon; log "removing $STATE_DIR"; rm -rf "$STATE_DIR" ;;
    *) echo "usage: $0 install|start|health|stop|reset" >&2; exit 2 ;;
  esac
}
