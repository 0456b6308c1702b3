#!/usr/bin/env bash
# Makes sure the local MariaDB server the database-provider tests use (127.0.0.1:3306, root
# without a password from 127.0.0.1) is running.
set -euo pipefail
ready() { mariadb-admin --protocol=tcp -h 127.0.0.1 -P 3306 -u root ping >/dev/null 2>&1; }
if ready; then exit 0; fi
echo "starting MariaDB"
if [ -x /etc/init.d/mariadb ]; then
  /etc/init.d/mariadb start >/dev/null
else
  (mysqld_safe >/dev/null 2>&1 &)
fi
for _ in $(seq 1 30); do
  ready && exit 0
  sleep 1
done
echo "MariaDB did not start on 127.0.0.1:3306" >&2
exit 1
