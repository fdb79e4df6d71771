#!/bin/sh
# Run once by the postgres image when it creates the primary's cluster: standbys on the
# compose network may stream from it (as the database's owner, with its password).
set -e
echo "host replication ${POSTGRES_USER} samenet scram-sha-256" >> "$PGDATA/pg_hba.conf"
