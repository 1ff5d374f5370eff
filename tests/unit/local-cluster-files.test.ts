/**
 * What the local cluster adds to Rendered for one run, as plain data: its placement puts every path inside its own
 * scratch directories and every server on its own port, the stack rendered for it points PgBouncer, the exporters and
 * Prometheus at exactly those; passwords never leak into a file, a command line or a rendered file; the secrets a
 * launch names are filled from this run's passwords and ports.
 */
import yaml from "js-yaml";
import { describe, expect, it } from "vitest";
import { localCommand } from "../../cli/local";
import { placementFor, type PlacementPorts } from "../../configs/placement";
import { renderStack } from "../../configs/render";
import type { Rendered } from "../../configs/rendered";
import { monitorRole, statsUser } from "../../configs/roles";
import { isScramVerifier } from "../../configs/scram";
import { parseStackSpec } from "../../configs/spec";
import {
  alertRuleGroupNames,
  clusterBootstrapSql,
  clusterEntries,
  clusterPlacement,
  clusterUrls,
  superuserSocketUrl,
  clusterUserlist,
  clusterVerifiers,
  connectionUrl,
  entryIn,
  filledSecretEnv,
  generatePasswords,
  maskPasswords,
  passwordList,
  renderedWith,
  secretInputs,
} from "../../local/cluster-files";
import { clusterSteps, onPlacedPort } from "../../local/cluster";
import { PortInUseError } from "../../local/runtime/ports";

const spec = parseStackSpec("perf", { target: "local", node: { memory: "2Gi", cpus: 2 }, postgres: { hugePages: "on" } });
const ports: PlacementPorts = {
  postgres: 41001,
  pgbouncer: 41002,
  postgresExporter: 41003,
  pgbouncerExporter: 41004,
  nodeExporter: 41005,
  mtail: 41006,
  canary: 41007,
  prometheus: 41008,
};
/** Scratch directories as programs in the rootfs see them (local/runtime/scratch.ts). */
const dirs = {
  postgres: "/tmp/pgstack/perf-postgres-aaaaaa",
  pgbouncer: "/tmp/pgstack/perf-pgbouncer-bbbbbb",
  postgresExporter: "/tmp/pgstack/perf-postgres-exporter-cccccc",
  mtail: "/tmp/pgstack/perf-mtail-dddddd",
  prometheus: "/tmp/pgstack/perf-prometheus-eeeeee",
  tls: "/tmp/pgstack/perf-tls-ffffff",
};
/** The CA certificate as clients on this host see it (inside the rootfs under chroot). */
const caHostPath = `/work/.cache/debian13-rootfs${dirs.tls}/ca.crt`;
const tlsQuery = `sslmode=verify-full&sslrootcert=${caHostPath}`;
const placement = clusterPlacement({ ports, dirs, pgdataEntry: "data" });
const rendered = renderStack(spec, placement);
const passwords = generatePasswords();
const verifiers = clusterVerifiers(rendered.roles, passwords);

describe("generated passwords", () => {
  it("are 32 URL-safe characters, all different, new every time", () => {
    const all = passwordList(passwords);
    for (const pw of all) expect(pw).toMatch(/^[A-Za-z0-9_-]{32}$/);
    // One per role kind: superuser, owner, app, readOnly, canary, monitor, stats, PgBouncer's admin.
    expect(new Set(all).size).toBe(8);
    expect(passwordList(generatePasswords())).not.toEqual(all);
  });

  it("are masked wherever they appear, raw or percent-encoded", () => {
    const url = connectionUrl("app", "p@ss/w:rd", 5432, "app", "/ca.crt");
    expect(url).toBe("postgresql://app:p%40ss%2Fw%3Ard@127.0.0.1:5432/app?sslmode=verify-full&sslrootcert=/ca.crt");
    expect(maskPasswords(`failed: ${url} and p@ss/w:rd`, ["p@ss/w:rd"])).toBe(
      "failed: postgresql://app:***@127.0.0.1:5432/app?sslmode=verify-full&sslrootcert=/ca.crt and ***",
    );
  });
});

describe("the cluster's placement", () => {
  it("puts every path inside the scratch directory of the server that reads it, and keeps the perf cluster's binds", () => {
    expect(placement.paths).toEqual({
      pgdata: `${dirs.postgres}/data`,
      postgresSocketDir: dirs.postgres,
      postgresExporterQueries: `${dirs.postgresExporter}/${clusterEntries.queries}`,
      tlsCertificate: `${dirs.tls}/tls.crt`,
      tlsKey: `${dirs.tls}/tls.key`,
      tlsCa: `${dirs.tls}/ca.crt`,
      mtailPrograms: `${dirs.mtail}/progs`,
      pgbouncerAuthFile: `${dirs.pgbouncer}/userlist.txt`,
      pgbouncerLog: `${dirs.pgbouncer}/logfile.log`,
      prometheusConfig: `${dirs.prometheus}/prometheus.yml`,
      alertRules: `${dirs.prometheus}/alert-rules.yaml`,
      prometheusData: `${dirs.prometheus}/data`,
    });
    expect(placement.ports).toEqual(ports);
    const reference = placementFor("local");
    expect({ ...placement, ports: reference.ports, paths: reference.paths }).toEqual(reference);
  });

  it("takes the alert tests' intervals over the perf cluster's, and the rendering refuses unusable ones", () => {
    const fast = clusterPlacement({ ports, dirs, pgdataEntry: "data", intervals: { scrapeMs: 2_000, evaluationMs: 1_000, canaryMs: 1_000 } });
    expect(fast.intervals).toEqual({ scrapeMs: 2_000, evaluationMs: 1_000, canaryMs: 1_000 });
    expect(clusterPlacement({ ports, dirs, pgdataEntry: "data" }).intervals).toEqual(placementFor("local").intervals);
    const tooFast = clusterPlacement({ ports, dirs, pgdataEntry: "data", intervals: { scrapeMs: 500 } });
    expect(() => renderStack(spec, tooFast)).toThrow(/intervals\.scrapeMs 500 must be a whole number ≥ 1000/);
  });

  it("renders postgresql.conf to listen on this run's port and put its socket in this run's postgres directory", () => {
    // The rig runs the conf as it is (no -c port, listen_addresses or unix_socket_directories): it must say all three.
    const conf = rendered.files["postgresql.conf"];
    const setting = (name: string) => new RegExp(`^${name} = ('[^']*'|\\S+)`, "m").exec(conf)?.[1];
    expect(setting("port")).toBe("41001");
    expect(setting("listen_addresses")).toBe("'127.0.0.1'");
    expect(setting("unix_socket_directories")).toBe(`'${dirs.postgres}'`);
    expect(conf).toMatch(/^unix_socket_directories = .*# the perf cluster's socket directory for this run/m);
    // Every container target, and the perf stack's reference rendering, keep the image's socket directory.
    for (const target of ["docker", "kubernetes", "local"] as const) {
      const reference = renderStack(parseStackSpec("ref", { target, node: { memory: "16Gi", cpus: 4 } })).files["postgresql.conf"];
      expect(reference, target).toMatch(/^unix_socket_directories = '\/var\/run\/postgresql' +# the image's socket directory/m);
    }
  });

  it("renders pgbouncer.ini with everything the rig needs said, so PgBouncer reads it unedited", () => {
    const ini = rendered.files["pgbouncer.ini"];
    // No Unix socket; no pid file. PgBouncer logs to stderr (the rig's log file) and to its logfile in its own
    // scratch directory, beside the rig's capture, which mtail follows.
    expect(ini).toMatch(/^unix_socket_dir = $/m);
    expect(ini).not.toMatch(/^\s*pidfile\s*=/m);
    expect(ini).toMatch(new RegExp(`^logfile = ${dirs.pgbouncer}/logfile\\.log$`, "m"));
    expect(rendered.launches.mtail.args).toContain(`${dirs.pgbouncer}/logfile.log`);
    expect(ini).not.toMatch(/^\s*%include/m);
  });

  it("renders PgBouncer, every launch and Prometheus at this run's ports and paths", () => {
    const ini = rendered.files["pgbouncer.ini"];
    expect(ini).toContain("app = host=127.0.0.1 port=41001 dbname=app");
    expect(ini).toMatch(/^listen_addr = 127\.0\.0\.1$/m);
    expect(ini).toMatch(/^listen_port = 41002$/m);
    expect(ini).toContain(`auth_file = ${dirs.pgbouncer}/userlist.txt`);
    const { launches } = rendered;
    expect(launches.postgresExporter.args).toContain("--web.listen-address=127.0.0.1:41003");
    expect(launches.postgresExporter.args).toContain(`--extend.query-path=${dirs.postgresExporter}/postgres-exporter-queries.yaml`);
    expect(launches.postgresExporter.env.DATA_SOURCE_URI).toMatch(/^127\.0\.0\.1:41001\/app\?/);
    expect(launches.pgbouncerExporter.args.join(" ")).toContain("@127.0.0.1:41002/pgbouncer");
    expect(launches.mtail.args.join(" ")).toContain(`${dirs.postgres}/data/log/postgresql-*.log`);
    expect(launches.mtail.args.join(" ")).toContain(`--progs ${dirs.mtail}/progs`);
    expect(launches.canary.args).toEqual(["canary", "--listen", "127.0.0.1:41007"]);
    expect(launches.prometheus?.args).toEqual([
      `--config.file=${dirs.prometheus}/prometheus.yml`,
      `--storage.tsdb.path=${dirs.prometheus}/data`,
      "--web.listen-address=127.0.0.1:41008",
    ]);
    const config = yaml.load(rendered.files["prometheus.yml"] ?? "") as { rule_files: string[]; scrape_configs: { static_configs: { targets: string[] }[] }[] };
    expect(config.rule_files).toEqual([`${dirs.prometheus}/alert-rules.yaml`]);
    expect(config.scrape_configs.flatMap((c) => c.static_configs[0].targets).sort()).toEqual(
      ["127.0.0.1:41003", "127.0.0.1:41004", "127.0.0.1:41005", "127.0.0.1:41006", "127.0.0.1:41007"].sort(),
    );
  });

  it("renders again with a server moved, changing only what reads that port", () => {
    const moved = renderedWith(rendered, { ports: { pgbouncer: 42002 } });
    expect(moved.placement.ports).toEqual({ ...ports, pgbouncer: 42002 });
    expect(moved.files["pgbouncer.ini"]).toMatch(/^listen_port = 42002$/m);
    expect(moved.launches.pgbouncerExporter.args.join(" ")).toContain("@127.0.0.1:42002/pgbouncer");
    expect(moved.launches.postgresExporter).toEqual(rendered.launches.postgresExporter);
    expect(moved.files["postgresql.conf"]).toBe(rendered.files["postgresql.conf"]);
    // PostgreSQL in a fresh directory (after initdb could not run twice in one): mtail follows it there.
    const fresh = renderedWith(rendered, { paths: { pgdata: "/tmp/pgstack/perf-postgres-ffffff/data", postgresSocketDir: "/tmp/pgstack/perf-postgres-ffffff" } });
    expect(fresh.launches.mtail.args.join(" ")).toContain("/tmp/pgstack/perf-postgres-ffffff/data/log/");
    expect(fresh.files["postgresql.conf"]).toMatch(/^unix_socket_directories = '\/tmp\/pgstack\/perf-postgres-ffffff' /m);
    expect(fresh.placement.intervals).toEqual(rendered.placement.intervals);
  });

  it("requires TLS of PgBouncer's clients unless the run compares TLS, and keeps the comparison's choice when a server moves", () => {
    expect(rendered.placement.clientTls).toBe("require");
    expect(rendered.files["pgbouncer.ini"]).toMatch(/^client_tls_sslmode = require$/m);
    const comparing = renderStack(spec, clusterPlacement({ ports, dirs, pgdataEntry: "data", clientTls: "allow" }));
    expect(comparing.files["pgbouncer.ini"]).toMatch(/^client_tls_sslmode = allow$/m);
    // A server that had to move re-renders: PgBouncer, started after it, must still admit the plain-text leg.
    const moved = renderedWith(comparing, { ports: { postgres: 42001 } });
    expect(moved.placement.clientTls).toBe("allow");
    expect(moved.files["pgbouncer.ini"]).toMatch(/^client_tls_sslmode = allow$/m);
    expect(renderedWith(rendered, { ports: { postgres: 42001 } }).files["pgbouncer.ini"]).toMatch(/^client_tls_sslmode = require$/m);
  });

  it.each([
    [dirs.pgbouncer, `${dirs.pgbouncer}/userlist.txt`, "userlist.txt"],
    [dirs.mtail, `${dirs.mtail}/progs/postgresql.mtail`, "progs/postgresql.mtail"],
    [`${dirs.mtail}/`, `${dirs.mtail}/progs/x`, "progs/x"],
  ])("finds %s's entry for %s", (dir, placed, entry) => {
    expect(entryIn(dir, placed)).toBe(entry);
  });

  it.each([
    [dirs.pgbouncer, "/etc/pgbouncer/userlist.txt"],
    [dirs.pgbouncer, `${dirs.pgbouncer}-other/userlist.txt`],
    [dirs.pgbouncer, `${dirs.pgbouncer}/../escape`],
    [dirs.pgbouncer, dirs.pgbouncer],
  ])("refuses to write %s's file at %s", (dir, placed) => {
    expect(() => entryIn(dir, placed)).toThrow(/is not inside/);
  });
});

describe("verifiers, bootstrap and userlist", () => {
  it("give every role a SCRAM verifier and hold no password", () => {
    expect(Object.keys(verifiers).sort()).toEqual(["app", "app_owner", "app_readonly", "pgstack_canary", monitorRole, "pgstack_pgbouncer_admin", "postgres", statsUser].sort());
    for (const v of Object.values(verifiers)) expect(isScramVerifier(v)).toBe(true);
    const texts = [clusterBootstrapSql(rendered, verifiers), clusterUserlist(rendered.roles, verifiers), ...Object.values(rendered.files)];
    for (const text of texts) for (const pw of passwordList(passwords)) expect(text).not.toContain(pw);
  });

  it("bootstrap is the rendered roles.sql, then every database role's verifier (and the superuser's)", () => {
    const sql = clusterBootstrapSql(rendered, verifiers);
    expect(sql.startsWith(rendered.files["roles.sql"])).toBe(true);
    for (const role of ["postgres", "app_owner", "app", "app_readonly", "pgstack_canary", monitorRole]) {
      expect(sql).toContain(`ALTER ROLE "${role}" PASSWORD '${verifiers[role]}';`);
    }
    // PgBouncer-only users are no database roles.
    expect(sql).not.toContain(`ALTER ROLE "${statsUser}"`);
    expect(sql).not.toContain(`ALTER ROLE "pgstack_pgbouncer_admin"`);
    expect(sql).toMatch(/\\connect "app"\nSET client_min_messages = warning;\nCREATE EXTENSION IF NOT EXISTS pg_stat_statements;\nCREATE EXTENSION IF NOT EXISTS vector;/);
    expect(sql).toContain(`GRANT pg_monitor TO`);
  });

  it("userlist lists the users Rendered says PgBouncer knows, with the same verifiers PostgreSQL gets", () => {
    expect(rendered.roles.pgbouncerUsers).toEqual(["app", "app_readonly", "pgstack_canary", "pgstack_pgbouncer_admin", statsUser]);
    const lines = clusterUserlist(rendered.roles, verifiers).trim().split("\n");
    expect(lines).toEqual(rendered.roles.pgbouncerUsers.map((user) => `"${user}" "${verifiers[user]}"`));
  });

  it("names the role a verifier is missing for", () => {
    const { [statsUser]: _left, ...withoutStats } = verifiers;
    expect(() => clusterUserlist(rendered.roles, withoutStats)).toThrow(`PgBouncer's auth_file needs a verifier for "${statsUser}"`);
  });
});

describe("URLs and the launches' secrets", () => {
  const urls = clusterUrls(rendered, passwords, caHostPath);

  it("reach this run's PostgreSQL, PgBouncer and Prometheus as the rendered roles, verifying the servers with the CA's host path", () => {
    expect(urls).toEqual({
      pooled: `postgresql://app:${passwords.app}@127.0.0.1:41002/app?${tlsQuery}`,
      direct: `postgresql://app_owner:${passwords.owner}@127.0.0.1:41001/app?${tlsQuery}`,
      readOnly: `postgresql://app_readonly:${passwords.readOnly}@127.0.0.1:41002/app?${tlsQuery}`,
      canaryPooled: `postgresql://pgstack_canary:${passwords.canary}@127.0.0.1:41002/app?${tlsQuery}`,
      canaryDirect: `postgresql://pgstack_canary:${passwords.canary}@127.0.0.1:41001/app?${tlsQuery}`,
      stats: `postgresql://${statsUser}:${passwords.stats}@127.0.0.1:41002/pgbouncer?${tlsQuery}`,
      pgbouncerAdmin: `postgresql://pgstack_pgbouncer_admin:${passwords.pgbouncerAdmin}@127.0.0.1:41002/pgbouncer?${tlsQuery}`,
      prometheus: "http://127.0.0.1:41008",
    });
    // The superuser: the socket, by peer, no password; never a TCP URL.
    expect(superuserSocketUrl(rendered, "/host/run")).toBe("postgresql://postgres@localhost/postgres?host=%2Fhost%2Frun&port=41001");
    // The programs in the rootfs (the exporters) read the same CA at the placement's path; the rendering says so.
    expect(rendered.tls.clientQuery).toBe(`sslmode=verify-full&sslrootcert=${dirs.tls}/ca.crt`);
    expect(rendered.launches.postgresExporter.env.DATA_SOURCE_URI).toContain(rendered.tls.clientQuery);
  });

  it("fill exactly the variables each launch names, and no other", () => {
    const inputs = secretInputs(rendered, passwords, caHostPath);
    const { launches } = rendered;
    expect(filledSecretEnv(launches.postgresExporter, inputs)).toEqual({ DATA_SOURCE_PASS: passwords.monitor });
    expect(filledSecretEnv(launches.pgbouncerExporter, inputs)).toEqual({ PGPASSWORD: passwords.stats });
    // The canary logs in as its own role.
    expect(filledSecretEnv(launches.canary, inputs)).toEqual({ PGSTACK_POOLED_URL: urls.canaryPooled, PGSTACK_DIRECT_URL: urls.canaryDirect });
    expect(filledSecretEnv(launches.nodeExporter, inputs)).toEqual({});
    expect(filledSecretEnv(launches.mtail, inputs)).toEqual({});
    // Nothing secret is in the rendered arguments or plain environment.
    for (const launch of Object.values(launches)) {
      const plain = JSON.stringify([launch?.args, launch?.env]);
      for (const pw of passwordList(passwords)) expect(plain).not.toContain(pw);
    }
  });

  it("follow a server that moved", () => {
    const moved = renderedWith(rendered, { ports: { postgres: 42001 } });
    expect(secretInputs(moved, passwords, caHostPath).directUrl).toBe(`postgresql://pgstack_canary:${passwords.canary}@127.0.0.1:42001/app?${tlsQuery}`);
  });
});

describe("Prometheus's checks", () => {
  it("knows the rule groups Prometheus must report loaded", () => {
    const names = alertRuleGroupNames(rendered);
    expect(names.length).toBeGreaterThan(3);
    for (const name of names) expect(rendered.files["alert-rules.yaml"]).toContain(`name: ${name}`);
  });

  it("expects one target per scrape job, the jobs the rules' absent guards name", () => {
    const absent = [...rendered.files["alert-rules.yaml"].matchAll(/absent\(up\{job="([a-z]+)"/g)].map((m) => m[1]).sort();
    expect(rendered.scrapeJobs.map((j) => j.job).sort()).toEqual(absent);
  });
});

describe("a start's steps (local/cluster.ts)", () => {
  it("run in this order, each named in `pgstack local --help` for PGSTACK_LOCAL_FAIL_AFTER", () => {
    expect(clusterSteps).toEqual(["placement", "certificates", "huge-pages", "postgres", "bootstrap", "pgbouncer", "exporters", "mtail", "canary", "prometheus"]);
    const help = localCommand.help.replace(/\s+/g, " ");
    const named = /PGSTACK_LOCAL_FAIL_AFTER=STEP for teardown tests: fail right after (.*?), with everything/.exec(help)?.[1] ?? "";
    expect(named.split(/,? (?:or )?/).sort()).toEqual([...clusterSteps].sort());
  });
});

describe("a server whose port another process took (onPlacedPort)", () => {
  it("moves to a new free port, renders again and starts from that rendering; nothing else moves", async () => {
    const seen: Rendered[] = [];
    const placed = await onPlacedPort(rendered, "pgbouncer", async (r) => {
      seen.push(r);
      if (seen.length < 3) throw new PortInUseError(`127.0.0.1:${r.placement.ports.pgbouncer} is taken`);
      return r.placement.ports.pgbouncer;
    });
    expect(seen[0]).toBe(rendered);
    const tried = seen.map((r) => r.placement.ports.pgbouncer);
    expect(new Set(tried).size).toBe(3);
    expect(placed.started).toBe(tried[2]);
    expect(placed.rendered).toBe(seen[2]);
    expect(placed.rendered.files["pgbouncer.ini"]).toMatch(new RegExp(`^listen_port = ${tried[2]}$`, "m"));
    expect({ ...placed.rendered.placement.ports, pgbouncer: ports.pgbouncer }).toEqual(ports);
  });

  it("gives up after five ports, and never retries another failure", async () => {
    let attempts = 0;
    await expect(
      onPlacedPort(rendered, "mtail", async () => {
        attempts++;
        throw new PortInUseError("taken");
      }),
    ).rejects.toThrow("taken");
    expect(attempts).toBe(5);
    attempts = 0;
    await expect(
      onPlacedPort(rendered, "mtail", async () => {
        attempts++;
        throw new Error("mtail exited (code 1) before it was ready");
      }),
    ).rejects.toThrow(/exited/);
    expect(attempts).toBe(1);
  });
});
