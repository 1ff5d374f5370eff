/**
 * PgBouncer's log file: where mtail reads PgBouncer's failed logins from (configs/mtail.ts), and how the file stays
 * bounded.
 *
 * Why a file: PgBouncer checks client passwords itself, against its auth_file; a wrong password through PgBouncer
 * never reaches PostgreSQL's log. Its stderr is the container's log, which no other container can read, so PgBouncer
 * also writes a `logfile` on a volume it shares with mtail. Setting `logfile` does not stop the stderr log
 * (PgBouncer's documentation: "setting logfile does not by itself turn off logging to stderr"), so `kubectl logs`
 * and `docker logs` keep the history; the file is only mtail's feed.
 *
 * Growth: with log_connections and log_disconnections on, every client login writes about two lines (≈ 300 bytes),
 * and the canary alone logs in every 10 s. PgBouncer has no rotation of its own: it keeps the file open, appending
 * (O_APPEND; read back from /proc/<pid>/fdinfo by tests/real/auth-failures.test.ts), and reopens it only on SIGHUP or RELOAD.
 * So the container targets run a small loop beside PgBouncer, in its container, that empties the file in place once
 * it is larger than `pgbouncerLogMaxBytes` (checked every `pgbouncerLogCheckSeconds`): with O_APPEND PgBouncer's next
 * line goes to the start of the emptied file, and mtail, finding the file shorter than where it was, reads it from the
 * start. The file stays below the cap plus what PgBouncer writes in one interval; at most the lines written between
 * mtail's last poll (250 ms) and the truncation are not counted, once per cap. Nothing of value is lost: stderr has
 * every line. The perf cluster runs no loop: its scratch directory, file included, goes with the cluster.
 *
 * PgBouncer 1.24 that cannot open its logfile does not start (`FATAL Cannot open logfile: '…': No such file or
 * directory`, exit 1; tried on Debian 13's 1.24.1), so the file's directory must exist and be PgBouncer's to write
 * on every target: an emptyDir, a Docker volume on the image's own directory, the cluster's scratch directory.
 */
import { bytes } from "./units";

/**
 * Where both container targets put the file: the images' own PgBouncer runtime directory (edoburu/pgbouncer creates
 * /var/run/pgbouncer owned by its postgres user). A new Docker volume mounted there takes that owner (Docker copies the
 * mount point's ownership into an empty named volume), so PgBouncer may create the file; /var/log/pgbouncer is root's
 * in the image. On Kubernetes the emptyDir is the pod's fsGroup's either way.
 */
export const containerPgbouncerLog = "/var/run/pgbouncer/pgbouncer.log";

/**
 * The cap: 64 MiB is about 200,000 logins, days of normal traffic, and the file lives on the pod's ephemeral storage
 * or a small Docker volume, where 64 MiB is nothing.
 */
export const pgbouncerLogMaxBytes = 64 * bytes.MiB;

/** How often the loop looks at the file's size: a cheap stat; a brute-force run of 1,000 logins a second adds 3 MB in that time. */
export const pgbouncerLogCheckSeconds = 10;

function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

export interface PgbouncerLogTrimOptions {
  /** Defaults to `pgbouncerLogMaxBytes`. */
  readonly maxBytes?: number;
  /** Defaults to `pgbouncerLogCheckSeconds`. */
  readonly intervalSeconds?: number;
}

/**
 * The loop, POSIX sh (busybox in the PgBouncer image, dash in the rig): `stat -c %s` reads the size (0 while the file
 * does not exist yet), `: >` empties it in place. One line on stderr per truncation.
 */
export function pgbouncerLogTrimLoop(logFile: string, opts: PgbouncerLogTrimOptions = {}): string {
  const max = opts.maxBytes ?? pgbouncerLogMaxBytes;
  const interval = opts.intervalSeconds ?? pgbouncerLogCheckSeconds;
  if (!Number.isInteger(max) || max < 1) throw new Error(`maxBytes ${max} must be a whole number of bytes ≥ 1`);
  if (!Number.isInteger(interval) || interval < 1) throw new Error(`intervalSeconds ${interval} must be a whole number of seconds ≥ 1`);
  if (!logFile.startsWith("/")) throw new Error(`PgBouncer's log file "${logFile}" must be an absolute path`);
  const file = shellQuote(logFile);
  return [
    "while :; do",
    `  size=$(stat -c %s ${file} 2>/dev/null || echo 0)`,
    `  if [ "$size" -gt ${max} ]; then`,
    `    : > ${file} && echo "pgbouncer-log: emptied ${logFile} at $size bytes (cap ${max})" >&2`,
    "  fi",
    `  sleep ${interval}`,
    "done",
  ].join("\n");
}

/**
 * PgBouncer's command on the container targets: the trim loop in the background, then PgBouncer exec'd in the shell's
 * place, so it stays the container's main process (its signals, its exit status); the loop ends with the container.
 */
export function pgbouncerContainerCommand(iniPath: string, logFile: string, opts: PgbouncerLogTrimOptions = {}): string[] {
  return ["sh", "-c", `(\n${pgbouncerLogTrimLoop(logFile, opts)}\n) &\nexec /usr/bin/pgbouncer ${shellQuote(iniPath)}\n`];
}
