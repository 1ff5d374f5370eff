/**
 * `pgstack local up` from the perf stack, as a user runs it, twice side by side: each cluster's components answer
 * (SQL through PgBouncer as the app user, Prometheus scraping all five metric sources — the three exporters, the
 * canary and mtail — with `stack` labels, the rendered rules loaded and no scrape guard pending or firing), and `pgstack local down` run from another process removes one cluster completely — processes, scratch
 * directories, state file, huge pages — while the other keeps working; then the other.
 * Nodes are sized 2Gi (--memory) so two clusters stay light on a 2-core CI runner.
 * Then one cluster through the library, to hold it against its own Rendered: every process runs its launch's
 * arguments and environment exactly, and every rendered file is where the placement says, byte for byte.
 */
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Client } from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clusterSpec, parseClusterFlags } from "../../cli/local";
import type { Launches, SecretInput } from "../../configs/launches";
import { mtailProgramFile } from "../../configs/mtail";
import { renderStack } from "../../configs/render";
import { LocalCluster } from "../../local/cluster";
import { alertRuleGroupNames, connectionUrl } from "../../local/cluster-files";
import { certificateProblems } from "../../local/tls";
import { getRuntime, httpGet } from "../../local/runtime";
import { defaultStateRoot, isRunning, readState, type ClusterState } from "../../local/state";
import { teardownFromState } from "../../local/teardown";

const root = path.resolve(__dirname, "..", "..");
const pgstack = path.join(root, "bin", "pgstack.js");
const names = [`lc-${process.pid}-a`, `lc-${process.pid}-b`];
const children: ChildProcess[] = [];
const isRoot = process.getuid?.() === 0;

interface UpOutput {
  readonly name: string;
  readonly pooledUrl: string;
  readonly directUrl: string;
  readonly prometheusUrl: string;
  readonly caPath: string;
  readonly ports: Record<string, number>;
  readonly hugePages: { used: boolean; reserved: number; text: string };
  readonly stateFile: string;
}

interface Up {
  readonly child: ChildProcess;
  readonly out: UpOutput;
  readonly state: ClusterState;
  stderr(): string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const nrHugePages = (): number => Number(fs.readFileSync("/proc/sys/vm/nr_hugepages", "utf8"));

/** `pgstack local up … --json` as a child (not detached), resolved once it printed its connection strings. */
function localUp(name: string): Promise<Up> {
  const child = spawn(process.execPath, [pgstack, "local", "up", "--stack", "perf", "--name", name, "--memory", "2Gi", "--json"], {
    cwd: root,
    stdio: ["ignore", "pipe", "pipe"],
    detached: false,
  });
  children.push(child);
  let stdout = "";
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  return new Promise((resolve, reject) => {
    child.stdout?.on("data", (d: Buffer) => {
      stdout += d.toString();
      const line = stdout.split("\n").find((l) => l.startsWith("{"));
      if (line === undefined || !stdout.includes("\n")) return;
      const out = JSON.parse(line) as UpOutput;
      const state = readState(defaultStateRoot, name);
      if (!state) return reject(new Error(`local up printed its URLs but ${name} has no state file`));
      resolve({ child, out, state, stderr: () => stderr, exited });
    });
    void exited.then(({ code, signal }) => reject(new Error(`local up ${name} exited (${code ?? signal}) before it was up:\n${stderr}`)));
  });
}

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [pgstack, ...args], { cwd: root, stdio: ["ignore", "pipe", "pipe"], detached: false });
    let stdout = "";
    let stderr = "";
    child.stdout?.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
    child.once("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

/** Everything of a cluster that could outlive it: live processes, directories, the state file. */
function leftovers(state: ClusterState): string[] {
  return [
    ...state.servers.filter(isRunning).map((s) => `process ${s.name} (pid ${s.pid})`),
    ...state.scratchDirs.filter((d) => fs.existsSync(d)).map((d) => `directory ${d}`),
    ...(fs.existsSync(path.join(defaultStateRoot, state.name, "state.json")) ? [`state file of ${state.name}`] : []),
  ];
}

async function sql<T>(url: string, text: string): Promise<T[]> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(text)).rows as T[];
  } finally {
    await client.end();
  }
}

interface RuleState {
  readonly name: string;
  readonly state: string;
  readonly health: string;
  readonly labels: Record<string, string>;
}

interface GroupState {
  readonly name: string;
  readonly lastEvaluation: string;
  readonly rules: (RuleState & { readonly type: string })[];
}

async function instantQuery(prometheusUrl: string, query: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]> {
  const response = await httpGet(`${prometheusUrl}/api/v1/query?query=${encodeURIComponent(query)}`);
  return JSON.parse(response.body).data.result;
}

/**
 * The scrape guards (ScrapeJobAbsent, ScrapeTargetDown) and any alert of theirs, as of an evaluation of their group
 * that came after every target had been scraped — so the guards saw every job's `up` series.
 */
async function guardsAfterEvaluation(prometheusUrl: string): Promise<{ rules: RuleState[]; alerts: { labels: Record<string, string>; state: string }[] }> {
  const guards = new Set(["ScrapeJobAbsent", "ScrapeTargetDown"]);
  const deadline = Date.now() + 30_000;
  const targets = JSON.parse((await httpGet(`${prometheusUrl}/api/v1/targets?state=active`)).body).data.activeTargets as { lastScrape: string }[];
  const since = Math.max(...targets.map((t) => Date.parse(t.lastScrape)));
  for (;;) {
    const groups = JSON.parse((await httpGet(`${prometheusUrl}/api/v1/rules?type=alert`)).body).data.groups as GroupState[];
    const group = groups.find((g) => g.rules.some((r) => guards.has(r.name)));
    if (group !== undefined && Date.parse(group.lastEvaluation) > since) {
      const alerts = JSON.parse((await httpGet(`${prometheusUrl}/api/v1/alerts`)).body).data.alerts as { labels: Record<string, string>; state: string }[];
      return {
        rules: group.rules.filter((r) => guards.has(r.name)),
        alerts: alerts.filter((a) => guards.has(a.labels.alertname)),
      };
    }
    if (Date.now() > deadline) throw new Error(`the scrape guards of ${prometheusUrl} were not evaluated after the last scrape within 30 s`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

let hugePagesBefore = 0;
beforeAll(() => {
  hugePagesBefore = nrHugePages();
});

afterAll(async () => {
  // Whatever a failed assertion left: the state files say what, and local/teardown ends exactly that.
  for (const child of children) if (child.exitCode === null && child.signalCode === null && child.pid) child.kill("SIGKILL");
  for (const name of names) await teardownFromState(defaultStateRoot, name).catch(() => undefined);
});

describe("pgstack local up / down", () => {
  it("runs two perf clusters side by side, each answering, and tears each down from another process", async () => {
    const started = Date.now();
    const [a, b] = await Promise.all(names.map(localUp));
    console.log(`two clusters up in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    const expectedGroups = alertRuleGroupNames(renderStack(clusterSpec(parseClusterFlags(["--memory", "2Gi"]).flags).spec));

    // Free loopback ports, none shared between the two.
    const ports = [...Object.values(a.out.ports), ...Object.values(b.out.ports)];
    expect(new Set(ports).size).toBe(16);

    // Each its own CA: a client of one cluster does not trust the other's servers.
    expect(a.out.caPath).not.toBe(b.out.caPath);
    for (const up of [a, b]) {
      for (const url of [up.out.pooledUrl, up.out.directUrl]) expect(url).toMatch(new RegExp(`\\?sslmode=verify-full&sslrootcert=${up.out.caPath}$`));
      // SQL through PgBouncer as the app user, pgvector in the app database.
      const [row] = await sql<{ user: string; vector: string; one: string }>(
        up.out.pooledUrl,
        "SELECT current_user AS user, (SELECT extversion FROM pg_extension WHERE extname = 'vector') AS vector, '[1,2]'::vector <-> '[1,3]'::vector AS one",
      );
      expect(row).toMatchObject({ user: "app", vector: expect.stringMatching(/^0\.8\./) });
      expect(Number(row.one)).toBe(1);
      const [direct] = await sql<{ port: number; status: string }>(up.out.directUrl, "SELECT inet_server_port() AS port, current_setting('huge_pages_status') AS status");
      expect(direct.port).toBe(up.out.ports.postgres);
      expect(direct.status).toBe(up.out.hugePages.used ? "on" : "off");
      if (isRoot) expect(up.out.hugePages.used, up.out.hugePages.text).toBe(true);

      // Prometheus: every metric source up, labelled with the stack; every rendered rule group loaded.
      const targets = JSON.parse((await httpGet(`${up.out.prometheusUrl}/api/v1/targets?state=active`)).body).data.activeTargets as {
        labels: Record<string, string>;
        health: string;
      }[];
      expect(targets.map((t) => [t.labels.job, t.labels.stack, t.health]).sort()).toEqual([
        ["canary", "perf", "up"],
        ["mtail", "perf", "up"],
        ["node", "perf", "up"],
        ["pgbouncer", "perf", "up"],
        ["postgres", "perf", "up"],
      ]);
      const groups = JSON.parse((await httpGet(`${up.out.prometheusUrl}/api/v1/rules`)).body).data.groups as { name: string; rules: unknown[] }[];
      expect(groups.map((g) => g.name).sort()).toEqual(expectedGroups);
      expect(groups.reduce((n, g) => n + g.rules.length, 0)).toBeGreaterThan(20);

      // No scrape guard pending or firing once the guards were evaluated over every target's samples: before the
      // cluster ran the canary and mtail, ScrapeJobAbsent for both was pending from the first evaluation.
      const scrapeGuards = await guardsAfterEvaluation(up.out.prometheusUrl);
      expect(scrapeGuards.rules.map((r) => `${r.name}/${r.labels.severity}: ${r.state}, ${r.health}`).sort()).toEqual([
        "ScrapeJobAbsent/critical: inactive, ok",
        "ScrapeJobAbsent/warning: inactive, ok",
        "ScrapeTargetDown/critical: inactive, ok",
        "ScrapeTargetDown/warning: inactive, ok",
      ]);
      expect(scrapeGuards.alerts).toEqual([]);
      // The canary and mtail series reach Prometheus with the stack label (their own metrics, not only `up`).
      for (const metric of ["pgstack_canary_connection_attempts_total", "pgstack_slow_queries_total"]) {
        const result = await instantQuery(up.out.prometheusUrl, `${metric}{stack="perf"}`);
        expect(result.length, metric).toBeGreaterThan(0);
      }
      // The canary's connections succeed (its first round creates its table through PgBouncer as the app user).
      const failures = await instantQuery(up.out.prometheusUrl, 'sum(pgstack_canary_connection_failures_total{stack="perf"})');
      expect(Number(failures[0]?.value[1])).toBe(0);

      // Passwords: only in the connection strings asked for and the private state file, never in progress output.
      const state = readState(defaultStateRoot, up.out.name) as ClusterState;
      expect(fs.statSync(up.out.stateFile).mode & 0o777).toBe(0o600);
      for (const pw of Object.values(state.passwords)) expect(up.stderr()).not.toContain(pw);
    }
    if (isRoot) expect(nrHugePages()).toBe(hugePagesBefore + a.out.hugePages.reserved + b.out.hugePages.reserved);

    // `local down` for A, from another process: A's `local up` tears down and exits as terminated; B is untouched.
    const stateA = readState(defaultStateRoot, names[0]) as ClusterState;
    const downA = await run(["local", "down", "--name", names[0]]);
    expect(downA.code, downA.stderr).toBe(0);
    expect(await a.exited).toMatchObject({ signal: "SIGTERM" });
    expect(leftovers(stateA)).toEqual([]);
    const [stillB] = await sql<{ n: number }>(b.out.pooledUrl, "SELECT 1 AS n");
    expect(stillB.n).toBe(1);
    if (isRoot) expect(nrHugePages()).toBe(hugePagesBefore + b.out.hugePages.reserved);

    const stateB = readState(defaultStateRoot, names[1]) as ClusterState;
    const downB = await run(["local", "down", "--name", names[1], "--json"]);
    expect(downB.code, downB.stderr).toBe(0);
    expect(JSON.parse(downB.stdout)).toMatchObject({ name: names[1], found: true, ownerTornDown: true });
    await b.exited;
    expect(leftovers(stateB)).toEqual([]);
    expect(nrHugePages()).toBe(hugePagesBefore);

    // A second down finds nothing and says so, successfully.
    const again = await run(["local", "down", "--name", names[1]]);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/no cluster named/);
  });
});

/** argv of a running process; under chroot the program replaced chroot, so argv[0] is the program itself. */
function cmdline(pid: number): string[] {
  return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").slice(0, -1);
}

function environ(pid: number): Record<string, string> {
  const entries = fs.readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").filter(Boolean);
  return Object.fromEntries(entries.map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]));
}

describe("the cluster runs what the stack rendered for its placement", () => {
  it("every launch's arguments and environment exactly, every file where the placement puts it", async () => {
    const stateRoot = fs.mkdtempSync(path.join(os.tmpdir(), "pgstack-lc-launches-"));
    const name = `lc-${process.pid}-lib`;
    const { spec } = clusterSpec(parseClusterFlags(["--memory", "1Gi"]).flags);
    const cluster = new LocalCluster({ name, spec, stateRoot, hugePages: false });
    try {
      const info = await cluster.start();
      const { rendered } = cluster;
      const { placement } = rendered;
      const runtime = await getRuntime();
      const state = readState(stateRoot, name) as ClusterState;
      expect(info.ports).toEqual(placement.ports);
      expect(state.steps.length).toBeGreaterThan(0);
      const pidOf = (server: string): number => {
        const running = state.servers.filter((s) => s.name === server && isRunning(s));
        expect(running.map((s) => s.name), `one running ${server}`).toEqual([server]);
        return running[0].pid;
      };

      // The secrets each launch names, as this run's passwords and URLs give them: the canary as its own role.
      const canaryUrl = (port: number) => connectionUrl(rendered.roles.canary, state.passwords.canary, port, rendered.spec.postgres.database, info.caPath);
      const secrets: Record<SecretInput, string> = {
        monitorPassword: state.passwords.monitor,
        statsPassword: state.passwords.stats,
        pooledUrl: canaryUrl(placement.ports.pgbouncer),
        directUrl: canaryUrl(placement.ports.postgres),
      };
      const launched: [keyof Launches, string][] = [
        ["postgresExporter", "postgres_exporter"],
        ["pgbouncerExporter", "pgbouncer_exporter"],
        ["nodeExporter", "node_exporter"],
        ["mtail", "mtail"],
        ["canary", "canary"],
        ["prometheus", "prometheus"],
      ];
      for (const [key, server] of launched) {
        const launch = rendered.launches[key];
        if (launch === null) throw new Error(`the perf cluster's placement renders no ${key}`);
        const pid = pidOf(server);
        // The canary is `node bin/pgstack.js canary …`: its arguments follow Node's and the script's.
        expect(cmdline(pid).slice(key === "canary" ? 2 : 1), server).toEqual(launch.args);
        const env = environ(pid);
        expect(env, server).toMatchObject(launch.env);
        for (const [variable, input] of Object.entries(launch.secretEnv)) expect(env[variable], `${server} ${variable}`).toBe(secrets[input]);
        expect(env.DATA_SOURCE_NAME, server).toBeUndefined();
      }

      // The exporters logged in with what their launches carry (DATA_SOURCE_URI/USER/PASS, PGPASSWORD).
      const metric = async (port: number, line: RegExp): Promise<boolean> => line.test((await httpGet(`http://127.0.0.1:${port}/metrics`)).body);
      expect(await metric(info.ports.postgresExporter, /^pg_up 1$/m)).toBe(true);
      expect(await metric(info.ports.pgbouncerExporter, /^pgbouncer_up 1$/m)).toBe(true);

      // No password on any command line (ps shows them to every user of the host).
      for (const server of state.servers.filter(isRunning)) {
        for (const pw of Object.values(state.passwords)) expect(cmdline(server.pid).join(" "), server.name).not.toContain(pw);
      }

      // PostgreSQL runs the rendered postgresql.conf as it is: PGDATA and nothing of the rig's. The one option is the
      // cluster's huge pages decision (here --no-huge-pages), not a placement: port, listen address and socket
      // directory come from the file, where the placement rendered them.
      const postgresArgs = cmdline(pidOf("postgres"));
      expect(postgresArgs.slice(1)).toEqual(["-D", placement.paths.pgdata, ...(rendered.memory.hugePagesSetting === "off" ? [] : ["-c", "huge_pages=off"])]);
      const placedSettings = await sql<{ name: string; setting: string; source: string }>(
        info.superuserUrl,
        "SELECT name, setting, source FROM pg_settings WHERE name IN ('port', 'listen_addresses', 'unix_socket_directories') ORDER BY name",
      );
      expect(placedSettings).toEqual([
        { name: "listen_addresses", setting: "127.0.0.1", source: "configuration file" },
        { name: "port", setting: String(placement.ports.postgres), source: "configuration file" },
        { name: "unix_socket_directories", setting: placement.paths.postgresSocketDir, source: "configuration file" },
      ]);
      expect(fs.existsSync(runtime.hostPath(`${placement.paths.postgresSocketDir}/.s.PGSQL.${placement.ports.postgres}`))).toBe(true);
      const read = (placed: string): string => fs.readFileSync(runtime.hostPath(placed), "utf8");
      expect(read(`${placement.paths.pgdata}/postgresql.conf`)).toBe(rendered.files["postgresql.conf"]);
      expect(read(`${placement.paths.pgdata}/pg_hba.conf`)).toBe(rendered.files["pg_hba.conf"]);
      expect(read(placement.paths.postgresExporterQueries)).toBe(rendered.files["postgres-exporter-queries.yaml"]);
      expect(read(`${placement.paths.mtailPrograms}/${mtailProgramFile}`)).toBe(rendered.files["postgresql.mtail"]);
      expect(read(placement.paths.prometheusConfig)).toBe(rendered.files["prometheus.yml"]);
      expect(read(placement.paths.alertRules)).toBe(rendered.files["alert-rules.yaml"]);
      const userlist = read(placement.paths.pgbouncerAuthFile);
      expect([...userlist.matchAll(/^"([^"]+)" "SCRAM-SHA-256\$/gm)].map((m) => m[1])).toEqual(rendered.roles.pgbouncerUsers);
      for (const pw of Object.values(state.passwords)) expect(userlist).not.toContain(pw);
      // The TLS files where the placement says: the key the servers' user's alone, the certificate from the CA every
      // URL names (info.caPath is the host's name of the placement's tlsCa), and the CA's key not among them.
      const keyStat = fs.statSync(runtime.hostPath(placement.paths.tlsKey));
      expect([keyStat.uid, keyStat.mode & 0o777]).toEqual([runtime.postgresUser.uid, 0o600]);
      expect(info.caPath).toBe(runtime.hostPath(placement.paths.tlsCa));
      expect(certificateProblems({ caPem: read(placement.paths.tlsCa), certificatePem: read(placement.paths.tlsCertificate), names: rendered.tls.serverNames })).toEqual([]);
      for (const url of [info.pooledUrl, info.directUrl, info.readOnlyUrl, info.pgbouncerAdminUrl]) expect(url).toContain(`?sslmode=verify-full&sslrootcert=${info.caPath}`);
      // The superuser: the socket, never TCP.
      expect(new URL(info.superuserUrl).searchParams.get("host")).toBe(runtime.hostPath(placement.paths.postgresSocketDir));

      // PgBouncer reads the rendered ini byte for byte. It says all the rig needs: no Unix socket, no pidfile, and its
      // logfile in its scratch directory (mtail's feed), besides stderr (the rig's log file).
      const pgbouncerArgs = cmdline(pidOf("pgbouncer"));
      expect(pgbouncerArgs).toHaveLength(2);
      expect(read(pgbouncerArgs[1])).toBe(rendered.files["pgbouncer.ini"]);
      const statsUrl = connectionUrl(rendered.roles.stats, state.passwords.stats, placement.ports.pgbouncer, "pgbouncer", info.caPath);
      const config = new Map((await sql<{ key: string; value: string }>(statsUrl, "SHOW CONFIG")).map((r) => [r.key, r.value]));
      expect(Object.fromEntries(["listen_addr", "listen_port", "auth_file", "unix_socket_dir", "logfile", "pidfile"].map((k) => [k, config.get(k)]))).toEqual({
        listen_addr: "127.0.0.1",
        listen_port: String(placement.ports.pgbouncer),
        auth_file: placement.paths.pgbouncerAuthFile,
        unix_socket_dir: "",
        logfile: placement.paths.pgbouncerLog,
        pidfile: "",
      });
      expect(Object.fromEntries(["client_tls_sslmode", "client_tls_cert_file", "server_tls_sslmode", "server_tls_ca_file"].map((k) => [k, config.get(k)]))).toEqual({
        client_tls_sslmode: "require",
        client_tls_cert_file: placement.paths.tlsCertificate,
        server_tls_sslmode: "verify-full",
        server_tls_ca_file: placement.paths.tlsCa,
      });
      expect(fs.readFileSync(info.logs.pgbouncer, "utf8")).toMatch(/listening on 127\.0\.0\.1:/);
      expect(info.logs.pgbouncer_logfile).toBe(runtime.hostPath(placement.paths.pgbouncerLog));
      expect(fs.readFileSync(info.logs.pgbouncer_logfile, "utf8")).toMatch(/listening on 127\.0\.0\.1:/);
      expect(cmdline(pidOf("mtail"))).toContain(placement.paths.pgbouncerLog);
    } finally {
      await cluster.stop().catch(() => undefined);
      await teardownFromState(stateRoot, name).catch(() => undefined);
      fs.rmSync(stateRoot, { recursive: true, force: true });
    }
  });
});
