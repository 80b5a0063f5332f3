#!/usr/bin/env bash
# A real OpenStack API on loopback for the real tier: Keystone 22 + Neutron 21 (ML2, no agents)
# + nova-api 26 (compute quota sets and flavors only), Debian bookworm packages, SQLite, one
# process per API, `transport_url = fake://`. Nothing listens beyond 127.0.0.1.
#
# usage: openstack.sh install          the Debian packages (root; idempotent)
#        openstack.sh start DIR        a fresh cloud with all its state, config and logs in DIR;
#                                      writes DIR/clouds.yaml (cloud `loopback`) and DIR/openrc
#        openstack.sh stop DIR         stop it by PID (no process is left)
#
# What the program needs from it, beyond a bare install (each one found by the real engine):
#   - the physical network `extranet` for VLAN provider networks with any VLAN id;
#   - the government information network `gov-information-network` (external, flat);
#   - roles `admin` and `member` (keystone-manage bootstrap makes both);
#   - flavors fj.small ... fj.xlarge (the stacks' `flavors`).
# It keeps Neutron's default quotas (rbac_policy: 10 per project), as a real cloud has them.
# SQLite needs: WAL, Keystone under uwsgi with ONE process and one thread (two processes give
# "database is locked" -> HTTP 500 on concurrent writes), Neutron api_workers=1 and a WSGI pool of 1.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PACKAGES=(keystone neutron-server nova-api uwsgi uwsgi-plugin-python3 python3-openstacksdk curl)
KEYSTONE=127.0.0.1:5000 NEUTRON=127.0.0.1:9696 NOVA=127.0.0.1:8774
PYTHON=/usr/bin/python3   # Debian's: the services' own libraries (neutron, openstacksdk 0.101)

log() { printf '[%5ds] %s\n' "$SECONDS" "$*" >&2; }

install_packages() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && { log "openstack packages: installed"; return 0; }
  if [ "$(id -u)" -ne 0 ]; then
    echo "openstack.sh: missing ${missing[*]}; run as root: apt-get install ${missing[*]}" >&2; return 1
  fi
  # maintainer scripts must not start services nor ask about databases, rabbit or endpoints
  [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; }
  debconf-set-selections <<'EOF'
keystone keystone/configure_db boolean false
keystone keystone/create-admin-tenant boolean false
keystone keystone/register-endpoint boolean false
neutron-common neutron/configure_db boolean false
neutron-common neutron/configure_rabbit boolean false
neutron-common neutron/configure_ksat boolean false
neutron-common neutron/configure_nova boolean false
neutron-api neutron/configure_api-endpoint boolean false
nova-common nova/configure_db boolean false
nova-common nova/configure_rabbit boolean false
nova-common nova/configure_ksat boolean false
nova-api nova/configure_api-endpoint boolean false
EOF
  log "openstack packages: installing ${missing[*]}"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" >/dev/null
  log "openstack packages: installed"
}

wait_http() {  # poll until the URL answers or its deadline passes
  local url=$1 deadline=$((SECONDS + ${2:-180}))
  until curl -sf -o /dev/null "$url"; do
    [ $SECONDS -lt $deadline ] || { echo "openstack.sh: $url did not answer (logs in $R/log)" >&2; return 1; }
    sleep 0.2
  done
}

port_free() {
  ! (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null
}

stop_pid() {  # by PID only: the uwsgi master / the services' parents take their workers down
  local f=$1 p
  [ -s "$f" ] || return 0
  p=$(cat "$f")
  if kill "$p" 2>/dev/null; then
    for _ in $(seq 1 150); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$p" 2>/dev/null && kill -9 "$p" 2>/dev/null
  fi
  rm -f "$f"
}

authtoken() {  # the [keystone_authtoken] section of service $1's configuration (its Keystone user)
  cat <<EOF
[keystone_authtoken]
www_authenticate_uri = http://$KEYSTONE
auth_url = http://$KEYSTONE
auth_type = password
username = $1
password = $SERVICE_PW
project_name = service
user_domain_name = Default
project_domain_name = Default
EOF
}

write_config() {
  mkdir -p "$R/etc" "$R/log" "$R/data/neutron/lock" "$R/data/nova"
  cat >"$R/etc/keystone.conf" <<EOF
[DEFAULT]
log_file = $R/log/keystone.log
[database]
connection = sqlite:///$R/data/keystone.db
[token]
provider = fernet
[fernet_tokens]
key_repository = $R/data/fernet-keys
[fernet_receipts]
key_repository = $R/data/fernet-keys
[credential]
key_repository = $R/data/credential-keys
EOF
  cat >"$R/etc/neutron.conf" <<EOF
[DEFAULT]
bind_host = 127.0.0.1
bind_port = ${NEUTRON#*:}
core_plugin = ml2
service_plugins = router,qos
auth_strategy = keystone
api_paste_config = /etc/neutron/api-paste.ini
transport_url = fake://
notify_nova_on_port_status_changes = false
notify_nova_on_port_data_changes = false
api_workers = 1
rpc_workers = 0
rpc_state_report_workers = 0
wsgi_default_pool_size = 1
wsgi_keep_alive = false
state_path = $R/data/neutron
log_file = $R/log/neutron-server.log
[database]
connection = sqlite:///$R/data/neutron.db
$(authtoken neutron)
region_name = RegionOne
[oslo_concurrency]
lock_path = $R/data/neutron/lock
[oslo_messaging_notifications]
driver = noop
EOF
  cat >"$R/etc/ml2_conf.ini" <<'EOF'
[ml2]
type_drivers = flat,vlan,vxlan
tenant_network_types = vxlan
mechanism_drivers = openvswitch
extension_drivers = port_security,qos
[ml2_type_flat]
flat_networks = *
[ml2_type_vlan]
network_vlan_ranges = extranet
[ml2_type_vxlan]
vni_ranges = 1:4000
EOF
  cat >"$R/etc/nova.conf" <<EOF
[DEFAULT]
transport_url = fake://
log_file = $R/log/nova-api.log
state_path = $R/data/nova
osapi_compute_listen = 127.0.0.1
osapi_compute_listen_port = ${NOVA#*:}
osapi_compute_workers = 1
enabled_apis = osapi_compute
[api]
auth_strategy = keystone
[api_database]
connection = sqlite:///$R/data/nova/nova_api.db
[database]
connection = sqlite:///$R/data/nova/nova.db
$(authtoken nova)
[oslo_concurrency]
lock_path = $R/data/nova
[oslo_messaging_notifications]
driver = noop
[wsgi]
api_paste_config = /etc/nova/api-paste.ini
EOF
  cat >"$R/clouds.yaml" <<EOF
clouds:
  loopback:
    auth:
      auth_url: http://$KEYSTONE/v3
      username: admin
      password: $ADMIN_PW
      project_name: admin
      user_domain_name: Default
      project_domain_name: Default
    region_name: RegionOne
    identity_api_version: 3
EOF
  cat >"$R/openrc" <<EOF
export OS_AUTH_URL=http://$KEYSTONE/v3 OS_USERNAME=admin OS_PASSWORD=$ADMIN_PW OS_PROJECT_NAME=admin
export OS_USER_DOMAIN_NAME=Default OS_PROJECT_DOMAIN_NAME=Default OS_REGION_NAME=RegionOne OS_IDENTITY_API_VERSION=3
EOF
  chmod 600 "$R/clouds.yaml" "$R/openrc" "$R/etc/"*
}

start_keystone() {
  OS_KEYSTONE_CONFIG_FILES=$R/etc/keystone.conf uwsgi --plugin python3 --http-socket "$KEYSTONE" \
    --wsgi-file /usr/bin/keystone-wsgi-public --master --processes 1 --threads 1 --lazy-apps \
    --add-header 'Connection: close' --die-on-term --pidfile "$R/keystone.pid" \
    --daemonize "$R/log/keystone-uwsgi.log"
}

start() {
  R=$(mkdir -p "$1" && cd "$1" && pwd)
  for p in "$KEYSTONE" "$NEUTRON" "$NOVA"; do
    port_free "$p" || { echo "openstack.sh: $p is in use (another loopback cloud? stop it first)" >&2; exit 1; }
  done
  for b in keystone-manage neutron-server nova-api uwsgi; do
    command -v "$b" >/dev/null || { echo "openstack.sh: $b not installed (run: $0 install)" >&2; exit 1; }
  done
  ADMIN_PW=${ADMIN_PW:-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')}
  SERVICE_PW=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
  write_config
  trap 'stop_all' ERR

  # keystone: schema, keys, bootstrap (admin project/user, roles admin/member/reader, endpoint)
  local K="keystone-manage --config-file $R/etc/keystone.conf"
  $K db_sync >>"$R/log/keystone-manage.log" 2>&1
  $PYTHON -c 'import sqlite3, sys; sqlite3.connect(sys.argv[1]).execute("PRAGMA journal_mode=WAL")' "$R/data/keystone.db"
  $K fernet_setup --keystone-user "$(id -un)" --keystone-group "$(id -gn)" >>"$R/log/keystone-manage.log" 2>&1
  $K credential_setup --keystone-user "$(id -un)" --keystone-group "$(id -gn)" >>"$R/log/keystone-manage.log" 2>&1
  $K bootstrap --bootstrap-password "$ADMIN_PW" --bootstrap-username admin --bootstrap-project-name admin \
     --bootstrap-role-name admin --bootstrap-service-name keystone --bootstrap-region-id RegionOne \
     --bootstrap-admin-url "http://$KEYSTONE/v3/" --bootstrap-public-url "http://$KEYSTONE/v3/" \
     --bootstrap-internal-url "http://$KEYSTONE/v3/" >>"$R/log/keystone-manage.log" 2>&1
  log "keystone: bootstrapped"
  start_keystone

  # neutron: the models' create_all + alembic stamp (alembic cannot ALTER constraints on SQLite)
  $PYTHON - "$R/data/neutron.db" <<'EOF' >>"$R/log/neutron-db.log" 2>&1
import sys
import sqlalchemy as sa
from neutron.db.migration.models import head
engine = sa.create_engine("sqlite:///" + sys.argv[1])
head.get_metadata().create_all(engine)
with engine.connect() as c:
    c.exec_driver_sql("PRAGMA journal_mode=WAL")
EOF
  neutron-db-manage --config-file "$R/etc/neutron.conf" --config-file "$R/etc/ml2_conf.ini" stamp heads \
    >>"$R/log/neutron-db.log" 2>&1
  # nova: the API database, cell0 and its database (quota sets count instances in the cells)
  local N="nova-manage --config-file $R/etc/nova.conf"
  { $N api_db sync && $N cell_v2 map_cell0 && $N db sync; } >>"$R/log/nova-manage.log" 2>&1
  log "neutron + nova: schemas"

  wait_http "http://$KEYSTONE/v3/"
  SERVICE_PW=$SERVICE_PW $PYTHON "$HERE/cloud_seed.py" services "$R/clouds.yaml" "$NEUTRON" "$NOVA"
  nohup neutron-server --config-file "$R/etc/neutron.conf" --config-file "$R/etc/ml2_conf.ini" \
    >"$R/log/neutron-server.stdout" 2>&1 &
  echo $! >"$R/neutron.pid"
  nohup nova-api --config-file "$R/etc/nova.conf" >"$R/log/nova-api.stdout" 2>&1 &
  echo $! >"$R/nova-api.pid"
  wait_http "http://$NEUTRON/"
  wait_http "http://$NOVA/"
  log "keystone, neutron, nova-api: answering"
  $PYTHON "$HERE/cloud_seed.py" resources "$R/clouds.yaml" >>"$R/log/seed.log" 2>&1 \
    || { tail -20 "$R/log/seed.log" >&2; false; }
  trap - ERR
  log "cloud ready in $R (clouds.yaml: cloud loopback)"
}

stop_all() {
  for f in nova-api neutron keystone; do stop_pid "$R/$f.pid"; done
}

case ${1:-} in
  install) install_packages ;;
  start) [ -n "${2:-}" ] || { echo "usage: $0 start DIR" >&2; exit 2; }; start "$2" ;;
  stop) [ -n "${2:-}" ] || { echo "usage: $0 stop DIR" >&2; exit 2; }; R=$2; stop_all ;;
  *) echo "usage: $0 install | start DIR | stop DIR" >&2; exit 2 ;;
esac
