# Shared by scripts/cassandra (one node) and scripts/cluster (three nodes): where the Cassandra
# jars and Java 17 are, fetching them, and starting, waiting for and stopping one node by PID.
# Source it after scripts/common.sh; do not run it. It expects $scripts (the scripts folder).

conf="$scripts/cassandra.d"
default_version=5.0.9
version="${DSF_CASSANDRA_VERSION:-$default_version}"
cache="${DSF_CACHE:-$HOME/.cache/dsf}/cassandra"
lib="$cache/$version/lib"
java_home="/usr/lib/jvm/java-17-openjdk-$(dpkg --print-architecture 2>/dev/null || echo amd64)"
java="$java_home/bin/java"
debian_packages="openjdk-17-jdk-headless maven python3"

is_port() { [[ "$1" =~ ^[0-9]+$ ]] && [ "$1" -ge 1 ] && [ "$1" -le 65535 ]; }

# port_free PORT [HOST]: exit 0 if nothing listens on HOST:PORT (default 127.0.0.1) or on the
# wildcard address.
port_free() {
  python3 - "$1" "${2:-127.0.0.1}" <<'EOF'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind((sys.argv[2], int(sys.argv[1])))
except OSError:
    sys.exit(1)
EOF
}

any_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# cql_ping HOST PORT: exit 0 if a native-protocol OPTIONS gets SUPPORTED back.
cql_ping() { python3 "$conf/cql.py" ping "$1" "$2" >/dev/null 2>&1; }

ensure_java17() {
  [ -x "$java" ] || die "$java not found (Debian package openjdk-17-jdk-headless)"
  "$java" -version 2>&1 | head -n1 | grep -q 'version "17\.' \
    || die "$java is not Java 17: $("$java" -version 2>&1 | head -n1)"
}

# Installs what is missing and resolves the jars into $lib (once; a second run returns at once).
fetch() {
  # shellcheck disable=SC2086
  ensure_debian_packages $debian_packages
  ensure_java17
  if [ -f "$lib/cassandra-all-$version.jar" ]; then
    say "Cassandra $version jars present in $lib"
    return 0
  fi
  mkdir -p "$cache/$version"
  (
    exec 8>"$cache/$version/.fetch.lock"
    flock 8
    [ -f "$lib/cassandra-all-$version.jar" ] && exit 0 # another fetch finished meanwhile
    local build="$cache/$version/build.$$"
    rm -rf "$build"
    trap 'rm -rf "$build"' EXIT
    mkdir -p "$build"
    cp "$conf/pom.xml" "$build/pom.xml"
    say "resolving org.apache.cassandra:cassandra-all:$version and its runtime jars (Maven)"
    JAVA_HOME="$java_home" mvn -B -q -Dstyle.color=never -f "$build/pom.xml" package \
      -Dcassandra.version="$version" -Dlib.dir="$build/lib" 2>&1 | sed 's/\x1b\[[0-9;]*m//g' >&2 \
      || die "Maven could not resolve cassandra-all $version (see its output above)"
    [ -f "$build/lib/cassandra-all-$version.jar" ] || die "Maven did not produce cassandra-all-$version.jar"
    rm -rf "$lib"
    mv -T "$build/lib" "$lib"
    say "Cassandra $version: $(find "$lib" -name '*.jar' | wc -l) jars in $lib"
  )
}

# node_pid DIR: prints the PID of the Cassandra running on data folder DIR; fails if none runs.
# Checks the command line, so a recycled PID is never mistaken for Cassandra.
node_pid() {
  local pidfile="$1/cassandra.pid" pid cmd
  [ -f "$pidfile" ] || return 1
  pid="$(cat "$pidfile" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [ -r "/proc/$pid/cmdline" ] || return 1
  cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
  [[ "$cmd" == *org.apache.cassandra.service.CassandraDaemon* && "$cmd" == *"$1/"* ]] || return 1
  echo "$pid"
}

# kill_pid PID: TERM, up to 60 s, then KILL.
kill_pid() {
  local pid="$1"
  kill -TERM "$pid" 2>/dev/null || return 0
  local i
  for ((i = 0; i < 600; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  say "Cassandra (pid $pid) did not stop within 60 s of TERM: killing it"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
}

# show_log_tail LOG
show_log_tail() {
  if [ -f "$1" ]; then
    say "---- last 50 lines of $1"
    tail -n 50 "$1" | cut -c1-400 >&2
    say "----"
  fi
}

# write_node_config DIR ADDRESS CQL_PORT STORAGE_PORT SEED TOKEN HINTED_HANDOFF CLUSTER_NAME:
# the node's cassandra.yaml and logback.xml in DIR/conf, from the template.
write_node_config() {
  local dir="$1"
  mkdir -p "$dir/conf" "$dir/data" "$dir/tmp" "$dir/triggers"
  sed -e "s|@DIR@|$dir|g" -e "s|@ADDRESS@|$2|g" -e "s|@CQL_PORT@|$3|g" -e "s|@STORAGE_PORT@|$4|g" \
    -e "s|@SEED@|$5|g" -e "s|@INITIAL_TOKEN@|$6|g" -e "s|@HINTED_HANDOFF@|$7|g" -e "s|@CLUSTER_NAME@|$8|g" \
    "$conf/cassandra.yaml.in" >"$dir/conf/cassandra.yaml"
  cp "$conf/logback.xml" "$dir/conf/logback.xml"
}

# launch_node DIR HEAP [JVM OPTION...]: starts Cassandra on the configuration in DIR/conf, in the
# background and in a session of its own (it outlives the caller and its Ctrl-C); PID in
# DIR/cassandra.pid, all output in DIR/cassandra.log (appended: a restart keeps the old log).
# Prints the PID.
launch_node() {
  local dir="$1" heap="$2"
  shift 2
  local jamm
  jamm="$(find "$lib" -maxdepth 1 -name 'jamm-*.jar' | head -n1)"
  [ -n "$jamm" ] || die "no jamm-*.jar in $lib: run scripts/cassandra fetch again after deleting $lib"
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  rm -f "$dir/cassandra.pid"
  # The shell writes its own PID, then execs java (same PID), whatever setsid does.
  (
    cd "$dir"
    MALLOC_ARENA_MAX=4 exec setsid bash -c 'echo $$ >"$0"; exec "$@"' "$dir/cassandra.pid" \
      "$java" "@$conf/jvm17-server.options" \
      "-Xms$heap" "-Xmx$heap" \
      "-javaagent:$jamm" \
      "-Djava.io.tmpdir=$dir/tmp" \
      "-Dcassandra.config=file://$dir/conf/cassandra.yaml" \
      "-Dcassandra.storagedir=$dir/data" \
      "-Dcassandra.logdir=$dir" \
      "-Dlogback.configurationFile=$dir/conf/logback.xml" \
      -Dcassandra-foreground=yes \
      "-Dcassandra.triggers_dir=$dir/triggers" \
      -Dcassandra.skip_wait_for_gossip_to_settle=0 \
      -Dcassandra.ring_delay_ms=1000 \
      -Dcassandra.superuser_setup_delay_ms=500 \
      -Dcassandra.shutdown_announce_in_ms=0 \
      -Dcassandra.libjemalloc=- \
      "$@" \
      -cp "$dir/conf:$lib/*" \
      org.apache.cassandra.service.CassandraDaemon \
      </dev/null >>"$dir/cassandra.log" 2>&1 8>&- 9>&-
  ) &
  local i pid
  for ((i = 0; i < 100; i++)); do
    [ -s "$dir/cassandra.pid" ] && break
    sleep 0.1
  done
  pid="$(cat "$dir/cassandra.pid" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  echo "$pid"
}

# wait_node PID HOST PORT LOG TIMEOUT [SINCE]: waits until the node answers CQL on HOST:PORT and
# its log says "Startup complete" (after line SINCE of LOG, for a restart on an old log).
# Returns 0 when ready, 1 if the JVM exited, 2 on timeout.
wait_node() {
  local pid="$1" host="$2" port="$3" log="$4" timeout="$5" since="${6:-0}" started=$SECONDS
  while :; do
    kill -0 "$pid" 2>/dev/null || return 1
    if tail -n +"$((since + 1))" "$log" 2>/dev/null | grep -q 'Startup complete' && cql_ping "$host" "$port"; then
      return 0
    fi
    ((SECONDS - started < timeout)) || return 2
    sleep 1
  done
}
