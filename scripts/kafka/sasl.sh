# shellcheck shell=bash
# scripts/kafka/sasl.sh — the SASL_SSL listener of the local broker, sourced by scripts/kafka.sh.
#
# Production Kafka is Azure Event Hubs (SASL_SSL, PLAIN); this listener lets the end-to-end tests
# run the ingester through the same protocol stack against the real broker: TLS with a
# certificate from a CA generated here, SASL PLAIN and SCRAM-SHA-512 users.
#
# Everything lives in $KAFKA_DATA_DIR/sasl (generated once, kept across restarts):
#   ca.pem, ca.key          the CA the tests trust (ssl.ca.location)
#   other-ca.pem            an unrelated CA: a client trusting only it must refuse the broker
#   broker.pem, broker.key  the broker's certificate (SAN IP:127.0.0.1, DNS:localhost), signed by ca.pem
#   broker.p12              the broker's keystore (PKCS12)
#   secrets                 keystore password and the two users' passwords (mode 600)
#   scram.done              the cluster id whose metadata holds the SCRAM user
# `scripts/kafka.sh sasl` prints what a client needs as KEY=VALUE lines (see cmd_sasl).
#
# A data dir formatted before this listener existed is migrated, not reformatted: the certificates
# and passwords are generated at the next start, PLAIN users live in server.properties (rewritten
# on every start), and the SCRAM user is added through the admin API once the broker answers
# (SCRAM credentials live in the KRaft metadata log, which `kafka-storage format --add-scram`
# could only fill for a new dir). Topics are kept.

KAFKA_SASL="${KAFKA_SASL:-on}"
case "$KAFKA_SASL" in on|off) ;; *) die "KAFKA_SASL must be on or off, got '$KAFKA_SASL'";; esac
KAFKA_SASL_PORT="${KAFKA_SASL_PORT:-$((KAFKA_PORT + 2))}"
case "$KAFKA_SASL_PORT" in ''|*[!0-9]*) die "KAFKA_SASL_PORT must be a number";; esac
if [ "$KAFKA_SASL" = on ]; then
  { [ "$KAFKA_SASL_PORT" != "$KAFKA_PORT" ] && [ "$KAFKA_SASL_PORT" != "$KAFKA_CONTROLLER_PORT" ]; } \
    || die "KAFKA_SASL_PORT must differ from KAFKA_PORT and KAFKA_CONTROLLER_PORT"
fi
SASL_DIR="$KAFKA_DATA_DIR/sasl"
SASL_PLAIN_USER=marketflow
SASL_SCRAM_USER=marketflow-scram
SASL_BOOTSTRAP="$KAFKA_HOST:$KAFKA_SASL_PORT"

# A random password of letters and digits only: it is embedded in a JAAS line and a SCRAM
# config without quoting problems.
sasl_random() {
  local s
  s="$(head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')"
  printf '%s' "${s:0:24}"
}

sasl_secret() { sed -n "s/^$1=//p" "$SASL_DIR/secrets"; }

# Generates the CA, the broker certificate and keystore, the unrelated CA and the passwords, once.
# Built in a temporary dir and renamed, so an interrupted run leaves nothing half made.
sasl_prepare() {
  [ "$KAFKA_SASL" = on ] || return 0
  [ -s "$SASL_DIR/secrets" ] && [ -s "$SASL_DIR/broker.p12" ] && return 0
  command -v openssl >/dev/null 2>&1 || die "openssl not found (needed once to make the SASL_SSL listener's certificates; or KAFKA_SASL=off)"
  local tmp="$SASL_DIR.tmp.$$" out ks_pw
  rm -rf "$tmp" "$SASL_DIR"
  mkdir -p "$tmp"
  chmod 700 "$tmp"
  ks_pw="$(sasl_random)"
  info "generating the SASL_SSL listener's CA, broker certificate and users in $SASL_DIR ..."
  # A separate shell, so that `set -e` stops at the first failing step (it is ignored inside an
  # `if` condition of this one).
  # shellcheck disable=SC2016
  if ! out="$(bash -euc '
    cd "$1"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 3650 -sha256 \
      -subj "/CN=marketflow local Kafka CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout other-ca.key -out other-ca.pem -days 3650 -sha256 \
      -subj "/CN=marketflow unrelated CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
    rm -f other-ca.key
    openssl req -newkey rsa:2048 -nodes -keyout broker.key -out broker.csr -subj "/CN=localhost"
    printf "%s\n" "subjectAltName=IP:127.0.0.1,DNS:localhost" "basicConstraints=CA:FALSE" \
      "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" >broker.ext
    openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out broker.pem \
      -days 3650 -sha256 -extfile broker.ext
    openssl pkcs12 -export -in broker.pem -inkey broker.key -certfile ca.pem -name broker \
      -out broker.p12 -passout "pass:$2"
    rm -f broker.csr broker.ext ca.srl
    printf "keystore=%s\nplain=%s\nscram=%s\n" "$2" "$3" "$4" >secrets
    chmod 600 secrets ./*.key broker.p12
  ' _ "$tmp" "$ks_pw" "$(sasl_random)" "$(sasl_random)" 2>&1)"; then
    printf '%s\n' "$out" >&2
    rm -rf "$tmp"
    die "could not generate the SASL_SSL certificates"
  fi
  mv "$tmp" "$SASL_DIR"
}

# server.properties lines for write_config (nothing when KAFKA_SASL=off).
sasl_listener() { [ "$KAFKA_SASL" = on ] && printf ',SASL_SSL://%s' "$SASL_BOOTSTRAP"; return 0; }
sasl_protocol_map() { [ "$KAFKA_SASL" = on ] && printf ',SASL_SSL:SASL_SSL'; return 0; }
sasl_config() {
  [ "$KAFKA_SASL" = on ] || return 0
  cat <<EOF

# SASL_SSL listener (scripts/kafka/sasl.sh): TLS with the local CA's certificate, PLAIN and
# SCRAM-SHA-512. Inter-broker and controller traffic stay on PLAINTEXT (single node, loopback).
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-512
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$SASL_PLAIN_USER="$(sasl_secret plain)";
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.ssl.keystore.type=PKCS12
listener.name.sasl_ssl.ssl.keystore.location=$SASL_DIR/broker.p12
listener.name.sasl_ssl.ssl.keystore.password=$(sasl_secret keystore)
listener.name.sasl_ssl.ssl.key.password=$(sasl_secret keystore)
listener.name.sasl_ssl.ssl.client.auth=none
EOF
}

# Was the running broker started with the SASL_SSL listener? (server.properties is only rewritten
# when the broker is started, so it describes the running process.)
sasl_configured() { grep -q '^listeners=.*SASL_SSL://' "$CONFIG" 2>/dev/null; }

# Adds (or resets) the SCRAM user once per cluster: ConfigCommand upserts, so running it again
# is harmless, but it costs a JVM start, hence the stamp.
sasl_ensure_scram_user() {
  [ "$KAFKA_SASL" = on ] && sasl_configured || return 0
  local cid out
  cid="$(sed -n 's/^cluster\.id=//p' "$LOG_DIRS/meta.properties" 2>/dev/null)"
  [ -n "$cid" ] && [ "$(cat "$SASL_DIR/scram.done" 2>/dev/null)" = "$cid" ] && return 0
  if ! out="$(run_tool kafka.admin.ConfigCommand --bootstrap-server "$BOOTSTRAP" --alter \
        --add-config "SCRAM-SHA-512=[iterations=8192,password=$(sasl_secret scram)]" \
        --entity-type users --entity-name "$SASL_SCRAM_USER" 2>&1)"; then
    printf '%s\n' "$out" >&2
    die "could not add the SCRAM-SHA-512 user $SASL_SCRAM_USER"
  fi
  echo "$cid" >"$SASL_DIR/scram.done"
  info "SCRAM-SHA-512 user $SASL_SCRAM_USER ready on $SASL_BOOTSTRAP"
}

# `kafka.sh sasl`: what a client needs to reach the SASL_SSL listener, as KEY=VALUE lines.
cmd_sasl() {
  [ "$KAFKA_SASL" = on ] || die "KAFKA_SASL=off: no SASL_SSL listener"
  require_up
  sasl_configured && [ -s "$SASL_DIR/secrets" ] \
    || die "the broker on $BOOTSTRAP was started without the SASL_SSL listener (by an older kafka.sh); 'scripts/kafka.sh restart' adds it"
  port_open "$KAFKA_SASL_PORT" || die "nothing answers on the SASL_SSL port $SASL_BOOTSTRAP"
  [ -n "$(cat "$SASL_DIR/scram.done" 2>/dev/null)" ] || die "the SCRAM user is missing ('scripts/kafka.sh start' adds it)"
  cat <<EOF
KAFKA_SASL_BOOTSTRAP=$SASL_BOOTSTRAP
KAFKA_SASL_CA=$SASL_DIR/ca.pem
KAFKA_SASL_OTHER_CA=$SASL_DIR/other-ca.pem
KAFKA_SASL_PLAIN_USER=$SASL_PLAIN_USER
KAFKA_SASL_PLAIN_PASSWORD=$(sasl_secret plain)
KAFKA_SASL_SCRAM_USER=$SASL_SCRAM_USER
KAFKA_SASL_SCRAM_PASSWORD=$(sasl_secret scram)
EOF
}
