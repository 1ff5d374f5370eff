/**
 * The programs the rig runs, where each lives in the Debian 13 rootfs, what native file names it goes by,
 * and the version the stack is written against.
 */
export type ProgramName =
  | "postgres"
  | "initdb"
  | "pg_ctl"
  | "pg_isready"
  | "psql"
  | "pgbench"
  | "pgbouncer"
  | "postgres_exporter"
  | "pgbouncer_exporter"
  | "node_exporter"
  | "prometheus"
  | "promtool"
  | "mtail";

/** Programs plus the pgvector extension, whose version is read from its control file. */
export type VersionedThing = ProgramName | "pgvector";

export interface ProgramSpec {
  /** Path inside the Debian 13 rootfs. */
  readonly rootfsPath: string;
  /** File names it goes by on a host: upstream tarballs and Debian packages name the exporters differently. */
  readonly nativeNames: readonly string[];
  /** Directories searched before PATH for a native install. */
  readonly nativeDirs: readonly string[];
  /** Version prefix the stack needs ("17" accepts 17.x); undefined accepts any version. */
  readonly needs?: string;
}

const PG_BIN = "/usr/lib/postgresql/17/bin";
const SYSTEM_DIRS = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin"];

function postgresTool(name: string): ProgramSpec {
  return { rootfsPath: `${PG_BIN}/${name}`, nativeNames: [name], nativeDirs: [PG_BIN], needs: "17" };
}

function debianExporter(upstream: string, needs?: string): ProgramSpec {
  return {
    rootfsPath: `/usr/bin/prometheus-${upstream.replace("_", "-")}`,
    nativeNames: [upstream, `prometheus-${upstream.replace("_", "-")}`],
    nativeDirs: SYSTEM_DIRS,
    needs,
  };
}

export const PROGRAMS: Readonly<Record<ProgramName, ProgramSpec>> = {
  postgres: postgresTool("postgres"),
  initdb: postgresTool("initdb"),
  pg_ctl: postgresTool("pg_ctl"),
  pg_isready: postgresTool("pg_isready"),
  psql: postgresTool("psql"),
  pgbench: postgresTool("pgbench"),
  pgbouncer: { rootfsPath: "/usr/sbin/pgbouncer", nativeNames: ["pgbouncer"], nativeDirs: SYSTEM_DIRS, needs: "1.24" },
  postgres_exporter: debianExporter("postgres_exporter", "0.17"),
  pgbouncer_exporter: debianExporter("pgbouncer_exporter", "0.10"),
  // node_exporter and mtail only feed dashboards; their metrics have been stable across releases.
  node_exporter: debianExporter("node_exporter"),
  prometheus: { rootfsPath: "/usr/bin/prometheus", nativeNames: ["prometheus"], nativeDirs: SYSTEM_DIRS, needs: "2.53" },
  promtool: { rootfsPath: "/usr/bin/promtool", nativeNames: ["promtool"], nativeDirs: SYSTEM_DIRS, needs: "2.53" },
  mtail: { rootfsPath: "/usr/bin/mtail", nativeNames: ["mtail"], nativeDirs: SYSTEM_DIRS },
};

export const PROGRAM_NAMES = Object.keys(PROGRAMS) as ProgramName[];

/** The stack is written against pgvector 0.8, the release that added iterative HNSW index scans. */
export const PGVECTOR_NEEDS = "0.8";
export const PGVECTOR_ROOTFS_CONTROL = "/usr/share/postgresql/17/extension/vector.control";

/** The first dotted version number in a program's `--version` output ("PgBouncer 1.24.1" → "1.24.1"). */
export function versionIn(output: string): string | undefined {
  return /\b(\d+\.\d+(?:\.\d+)?)/.exec(output)?.[1];
}

/** pgvector's version, from the `default_version` line of vector.control. */
export function pgvectorVersionIn(control: string): string | undefined {
  return /^\s*default_version\s*=\s*'([^']+)'/m.exec(control)?.[1];
}

/** Whether `version` is inside the `needs` prefix: "17.12" satisfies "17", "1.24.1" satisfies "1.24". */
export function satisfies(version: string, needs: string | undefined): boolean {
  return needs === undefined || version === needs || version.startsWith(`${needs}.`);
}

export function describeNeed(needs: string | undefined): string {
  return needs === undefined ? "any version" : `${needs}.x`;
}
