import * as fs from "node:fs";
import * as path from "node:path";
import {
  PGVECTOR_NEEDS,
  PGVECTOR_ROOTFS_CONTROL,
  PROGRAM_NAMES,
  PROGRAMS,
  describeNeed,
  pgvectorVersionIn,
  satisfies,
  versionIn,
  type ProgramName,
  type VersionedThing,
} from "./programs";
import { runCommand } from "./processes";
import type { RuntimeDescription } from "./runtime";

/** What a search found: usable paths and versions, and one line per thing that is missing or too old/new. */
export interface Detection {
  readonly paths: Partial<Record<ProgramName, string>>;
  readonly versions: Partial<Record<VersionedThing, string>>;
  readonly problems: readonly string[];
  readonly postgresUser?: RuntimeDescription["postgresUser"];
}

export function isComplete(detection: Detection): boolean {
  return detection.problems.length === 0;
}

/** Looks for every program on this host: the known install directories first, then PATH. */
export async function detectNative(): Promise<Detection> {
  const pathDirs = (process.env.PATH ?? "").split(":").filter(Boolean);
  const paths: Partial<Record<ProgramName, string>> = {};
  const versions: Partial<Record<VersionedThing, string>> = {};
  const problems: string[] = [];

  const missing: string[] = [];
  const wrongVersion: string[] = [];
  await Promise.all(
    PROGRAM_NAMES.map(async (name) => {
      const spec = PROGRAMS[name];
      const dirs = [...new Set([...spec.nativeDirs, ...pathDirs])];
      const seen = new Set<string>(); // /bin and /usr/bin are one directory on merged-/usr systems
      const rejected: string[] = [];
      for (const dir of dirs) {
        for (const fileName of spec.nativeNames) {
          const file = path.join(dir, fileName);
          if (!isExecutableFile(file) || seen.has(fs.realpathSync(file))) continue;
          seen.add(fs.realpathSync(file));
          const version = await versionOf([file, "--version"]);
          if (version !== undefined && satisfies(version, spec.needs)) {
            paths[name] = file;
            versions[name] = version;
            return;
          }
          rejected.push(`${version ?? "unknown version"} at ${file}`);
        }
      }
      if (rejected.length === 0) missing.push(name);
      else wrongVersion.push(`${name} ${rejected.join(", ")} (need ${describeNeed(spec.needs)})`);
    }),
  );
  if (missing.length > 0) problems.push(`not found: ${missing.sort().join(", ")}`);
  if (wrongVersion.length > 0) problems.push(`wrong version: ${wrongVersion.sort().join("; ")}`);

  if (paths.postgres !== undefined) {
    const control = nativePgvectorControl(paths.postgres);
    const version = control === undefined ? undefined : pgvectorVersionIn(fs.readFileSync(control, "utf8"));
    if (version !== undefined && satisfies(version, PGVECTOR_NEEDS)) versions.pgvector = version;
    else problems.push(`pgvector: ${version === undefined ? "not found" : `found ${version} at ${control}`}, need ${PGVECTOR_NEEDS}.x`);
  }

  const postgresUser = passwdEntry("/etc/passwd", "postgres");
  if (postgresUser === undefined) {
    problems.push(
      "no 'postgres' system user (PostgreSQL and PgBouncer refuse to run as root; " +
        "create one with: useradd --system --user-group --home-dir /var/lib/postgresql postgres)",
    );
  }
  return { paths, versions, problems, postgresUser };
}

/** Reads the versions of the programs inside the rootfs, where the paths are fixed by the Debian packages. */
export async function detectInRootfs(rootDir: string, chroot: string): Promise<Detection> {
  const paths: Partial<Record<ProgramName, string>> = {};
  const versions: Partial<Record<VersionedThing, string>> = {};
  const problems: string[] = [];
  await Promise.all(
    PROGRAM_NAMES.map(async (name) => {
      const spec = PROGRAMS[name];
      const version = await versionOf([chroot, rootDir, spec.rootfsPath, "--version"]);
      paths[name] = spec.rootfsPath;
      if (version !== undefined && satisfies(version, spec.needs)) versions[name] = version;
      else problems.push(`${name}: found ${version ?? "nothing"} at ${spec.rootfsPath}, need ${describeNeed(spec.needs)}`);
    }),
  );
  const controlFile = path.join(rootDir, PGVECTOR_ROOTFS_CONTROL);
  const pgvector = fs.existsSync(controlFile) ? pgvectorVersionIn(fs.readFileSync(controlFile, "utf8")) : undefined;
  if (pgvector !== undefined && satisfies(pgvector, PGVECTOR_NEEDS)) versions.pgvector = pgvector;
  else problems.push(`pgvector: found ${pgvector ?? "nothing"} at ${PGVECTOR_ROOTFS_CONTROL}, need ${PGVECTOR_NEEDS}.x`);

  const postgresUser = passwdEntry(path.join(rootDir, "etc/passwd"), "postgres");
  if (postgresUser === undefined) problems.push(`no 'postgres' user in ${rootDir}/etc/passwd (postgresql-common creates it)`);
  return { paths, versions, problems: problems.sort(), postgresUser };
}

async function versionOf(command: readonly string[]): Promise<string | undefined> {
  try {
    const result = await runCommand(command[0], command.slice(1), { env: process.env, timeoutMs: 30_000 });
    return versionIn(`${result.stdout}\n${result.stderr}`);
  } catch {
    return undefined;
  }
}

function isExecutableFile(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/**
 * vector.control sits in PostgreSQL's share directory, which is laid out differently by Debian
 * (/usr/lib/postgresql/17/bin → /usr/share/postgresql/17) and by a source build (bin → ../share).
 */
function nativePgvectorControl(postgres: string): string | undefined {
  const bin = path.dirname(fs.realpathSync(postgres));
  const candidates = [
    path.resolve(bin, "../share/extension/vector.control"),
    path.resolve(bin, "../share/postgresql/extension/vector.control"),
    PGVECTOR_ROOTFS_CONTROL,
  ];
  return candidates.find((file) => fs.existsSync(file));
}

function passwdEntry(passwdFile: string, user: string): RuntimeDescription["postgresUser"] | undefined {
  if (!fs.existsSync(passwdFile)) return undefined;
  for (const line of fs.readFileSync(passwdFile, "utf8").split("\n")) {
    const fields = line.split(":");
    if (fields[0] === user && fields.length >= 6) {
      return { uid: Number(fields[2]), gid: Number(fields[3]), home: fields[5] || "/" };
    }
  }
  return undefined;
}
