# Start the Debian PostgreSQL cluster and export the URL the catalog tests use (sourced by .ci/run).
version=$(ls /usr/lib/postgresql | sort -n | tail -1)
if ! pg_lsclusters -h | grep -q online; then
  pg_lsclusters -h | grep -q "^$version main" || pg_createcluster "$version" main >/dev/null
  pg_ctlcluster "$version" main start
fi
su postgres -c "psql -qtAc \"SELECT 1 FROM pg_roles WHERE rolname='headstart'\"" | grep -q 1 ||
  su postgres -c "psql -qc \"CREATE ROLE headstart LOGIN SUPERUSER PASSWORD 'headstart'\""
port=$(pg_lsclusters -h | awk '$2 == "main" {print $3; exit}')
export HEADSTART_TEST_POSTGRES_URL="postgresql://headstart:headstart@127.0.0.1:${port}/postgres"
echo "PostgreSQL $version on port $port"
