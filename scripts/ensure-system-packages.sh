#!/usr/bin/env bash
# Make sure the MariaDB server, clients, mariabackup, zstd and (for the metrics tests) Debian's
# prometheus-pushgateway are installed.
# Installs them with apt when missing and we are root; otherwise names the packages and fails.
set -euo pipefail
need=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
have mariadbd || have mysqld || need+=(mariadb-server)
have mariadb-install-db || have mysqld || need+=(mariadb-server)
have mariadb-dump || have mysqldump || need+=(mariadb-client)
have mariadb-binlog || have mysqlbinlog || need+=(mariadb-client)
have mariabackup || have xtrabackup || need+=(mariadb-backup)
have zstd || need+=(zstd)
have prometheus-pushgateway || need+=(prometheus-pushgateway)
# server builds other than the system's are fetched from Debian's archive with apt (make builds)
[ -f /usr/share/keyrings/debian-archive-keyring.gpg ] || need+=(debian-archive-keyring)
command -v dpkg-deb >/dev/null 2>&1 || need+=(dpkg)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
if [ "$(id -u)" -ne 0 ]; then
  echo "missing system packages: ${need[*]}" >&2
  echo "install them as root: sudo apt-get install -y ${need[*]}" >&2
  exit 1
fi
echo "installing system packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# the Debian package may start a server on :3306; mysqlops never uses it (sandboxes only)
