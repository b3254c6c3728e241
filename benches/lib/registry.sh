# shellcheck shell=bash
# Sourced by the comparison scripts that need a docker-registry on loopback.
#
# distribution cannot listen on port 0: a port is picked by binding port 0,
# and the registry is started again on another one when it loses the port
# (the caller's loop). It is ready when /v2/ answers with a header unique to
# this instance, so an older registry on a reused port is never taken for it.

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# registry_config DIR PORT HEADER TOKEN [delete]: writes DIR/config.yml for
# a registry storing in DIR/storage, answering HEADER: TOKEN; "delete"
# enables blob deletion.
registry_config() {
  local dir=$1 port=$2 header=$3 token=$4 delete=""
  [ "${5:-}" = delete ] && delete=$'  delete:\n    enabled: true\n'
  cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: warn
  formatter: text
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $dir/storage
${delete}http:
  addr: 127.0.0.1:$port
  secret: $token
  headers:
    $header: ["$token"]
EOF
}

# registry_env: prints `-u NAME` for every REGISTRY_* variable set, for
# `env`: docker-registry reads them as configuration.
registry_env() {
  env | sed -n 's/^\(REGISTRY_[^=]*\)=.*/-u\n\1/p'
}

# registry_ready PID PORT HEADER TOKEN TRIES: 0 once /v2/ on PORT answers
# with HEADER: TOKEN (polled every 0.1 s, TRIES times), 1 if PID exits or
# the tries run out.
registry_ready() {
  local pid=$1 port=$2 header=$3 token=$4 tries=$5
  for _ in $(seq "$tries"); do
    kill -0 "$pid" 2>/dev/null || return 1
    if curl -sf -D - -o /dev/null "http://127.0.0.1:$port/v2/" 2>/dev/null | grep -qi "$header: $token"; then return 0; fi
    sleep 0.1
  done
  return 1
}
