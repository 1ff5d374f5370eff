#!/usr/bin/env bash
# The postgres image's entrypoint: the part of docker-library/postgres 17's docker-entrypoint.sh that pgvector-stack
# relies on, so the Docker component runs this image and the upstream one alike (components/docker/layout.ts):
#
#   - started as root with `postgres …`: make PGDATA (0700) and /var/run/postgresql the postgres user's, then run
#     this script again as postgres (setpriv from util-linux, which the base image has; upstream uses gosu);
#   - as postgres, on an empty PGDATA (no PG_VERSION): initdb with the superuser password from POSTGRES_PASSWORD or
#     POSTGRES_PASSWORD_FILE (a SCRAM verifier is stored as it is) and POSTGRES_INITDB_ARGS, then a temporary server
#     on the Unix socket only, with the same arguments as the real one (so the rendered pg_hba.conf already applies),
#     runs /docker-entrypoint-initdb.d/*.sql and *.sh, and stops;
#   - then `exec "$@"`: PostgreSQL becomes the container's main process and gets its signals (STOPSIGNAL SIGINT).
#
# Left out, because no target uses them: POSTGRES_USER and POSTGRES_DB (the superuser is postgres, the stack creates
# its own database in its bootstrap SQL), POSTGRES_HOST_AUTH_METHOD and the pg_hba.conf line upstream appends to
# PGDATA (the stack passes its own hba_file), POSTGRES_INITDB_WALDIR, nss_wrapper for uids without a passwd entry,
# and compressed *.sql.gz/xz/zst init files.
#
# bash rather than sh: the temporary server's options pass through pg_ctl's shell (`printf %q` quotes them) and the
# password reaches initdb through a pipe (`<(…)`), never a file on disk.
set -Eeuo pipefail

# file_env VAR: VAR's value, or the contents of the file VAR_FILE names (Docker secrets, and the Docker component's
# uploads: a secret never sits in the environment `docker inspect` prints). Both set is a mistake, as upstream says.
file_env() {
	local var=$1 file_var="${1}_FILE"
	if [ -n "${!var:-}" ] && [ -n "${!file_var:-}" ]; then
		printf >&2 'error: both %s and %s are set (but are exclusive)\n' "$var" "$file_var"
		exit 1
	fi
	if [ -n "${!file_var:-}" ]; then
		export "$var"="$(<"${!file_var}")"
	fi
	unset "$file_var"
}

# Options after which postgres prints something and exits: no initialisation for those (`postgres --version`).
wants_no_server() {
	local arg
	for arg; do
		case "$arg" in
			-'?' | --help | --describe-config | -V | --version) return 0 ;;
		esac
	done
	return 1
}

# As root: the directories PostgreSQL writes must be postgres's. A new named volume is root's until then; find only
# chowns what is not postgres's yet, so a restart on a large PGDATA does not walk it rewriting every inode.
own_directories() {
	mkdir -p "$PGDATA"
	# PostgreSQL refuses a data directory others may read; the socket directory is setgid/sticky as upstream has it.
	# Failures are ignored as upstream does: under an arbitrary uid (Kubernetes runAsUser) these may belong to
	# someone else, and PostgreSQL then says precisely what is wrong.
	chmod 0700 "$PGDATA" || :
	mkdir -p /var/run/postgresql || :
	chmod 3775 /var/run/postgresql || :
	if [ "$(id -u)" = 0 ]; then
		find "$PGDATA" /var/run/postgresql \! -user postgres -exec chown postgres:postgres '{}' +
	fi
}

init_database() {
	if [ -z "${POSTGRES_PASSWORD:-}" ]; then
		echo >&2 "error: PGDATA ($PGDATA) is empty and no superuser password is set: set POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE"
		exit 1
	fi
	# Fails early, before initdb, if the init directory cannot be read (a volume with the wrong permissions).
	ls /docker-entrypoint-initdb.d/ >/dev/null

	# initdb --pwfile refuses an empty file, hence the newline; it runs `ALTER USER postgres PASSWORD '…'`, which
	# stores a SCRAM verifier as it is. POSTGRES_INITDB_ARGS is split by the shell, as upstream's eval does.
	eval 'initdb --username=postgres --pwfile=<(printf "%s\n" "$POSTGRES_PASSWORD") '"${POSTGRES_INITDB_ARGS:-}"

	# The temporary server: the container's own arguments (config_file, hba_file, …) without `postgres`, on the
	# socket only, so nothing outside the container can reach a half-initialised database, and the health check
	# (pg_isready on TCP) stays red until the real server runs. -p keeps the socket where psql looks for it.
	local args=("$@")
	[ "${args[0]:-}" = postgres ] && args=("${args[@]:1}")
	args+=(-c "listen_addresses=" -p "${PGPORT:-5432}")
	# NOTIFY_SOCKET unset: a supervisor must not take the temporary server for the real one.
	NOTIFY_SOCKET= pg_ctl -D "$PGDATA" -o "$(printf '%q ' "${args[@]}")" -w start

	local file
	for file in /docker-entrypoint-initdb.d/*; do
		case "$file" in
			*.sql)
				echo "$0: running $file"
				# PGHOST/PGHOSTADDR cleared: the scripts talk to the temporary server's socket, never to a host.
				PGHOST= PGHOSTADDR= psql -v ON_ERROR_STOP=1 --no-psqlrc --no-password --username=postgres --dbname=postgres -f "$file"
				;;
			*.sh)
				if [ -x "$file" ]; then
					echo "$0: running $file"
					"$file"
				else
					echo "$0: sourcing $file"
					# shellcheck disable=SC1090 # whatever the user put there
					. "$file"
				fi
				;;
			*) echo "$0: ignoring $file" ;;
		esac
	done

	pg_ctl -D "$PGDATA" -m fast -w stop
	echo "$0: PostgreSQL init process complete; ready for start up."
}

main() {
	# A first argument that is an option means "postgres with these options", as upstream has it.
	local first=${1:-}
	if [ "${first:0:1}" = - ]; then
		set -- postgres "$@"
	fi
	if [ "${1:-}" = postgres ] && ! wants_no_server "$@"; then
		: "${PGDATA:?the image sets PGDATA; it must not be empty}"
		# Read as root, before the switch, as upstream does: a secret file may be readable by root only.
		file_env POSTGRES_PASSWORD
		file_env POSTGRES_INITDB_ARGS
		own_directories
		if [ "$(id -u)" = 0 ]; then
			# setpriv sets the uid, the gid and postgres's supplementary groups and execs: no process of root stays.
			# HOME as gosu sets it, for psql's and initdb's sake.
			export HOME=/var/lib/postgresql
			exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
		fi
		if [ ! -s "$PGDATA/PG_VERSION" ]; then
			init_database "$@"
		else
			echo "$0: PGDATA ($PGDATA) holds a database; skipping initialisation"
		fi
	fi
	# The server has no use for the password (or its verifier); keep it out of its /proc/PID/environ.
	unset POSTGRES_PASSWORD
	exec "$@"
}

main "$@"
