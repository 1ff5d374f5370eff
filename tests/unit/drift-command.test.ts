/**
 * `pgstack drift` as a command: exit 0 when the committed snapshot is what this commit renders, 1 with a report when
 * not, usage errors for bad flags (main.ts turns a UsageError into exit 2). Uses the perf stack (target local), whose
 * render needs no Pulumi program run, against a snapshot written by the same code as `pgstack render`.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { runCommand } from "../../cli/command";
import { driftCommand } from "../../cli/drift";
import { renderStackFiles, writeStacks } from "../../cli/render";
import { UsageError } from "../../cli/errors";

/** The command as `pgstack drift …` runs it: through the dispatcher, which prints what it throws. */
async function dispatch(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return run(args, () => runCommand({ drift: { summary: "drift", load: () => driftCommand } }, ["drift", ...args]));
}

async function run(args: string[], call = () => driftCommand.run(args)): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const out = vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
    stdout += String(chunk);
    return true;
  });
  const err = vi.spyOn(console, "error").mockImplementation((...parts: unknown[]) => {
    stderr += `${parts.join(" ")}\n`;
  });
  try {
    return { code: await call(), stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}

describe("pgstack drift (snapshots)", () => {
  let committed: string;
  const conf = () => path.join(committed, "perf", "postgresql.conf");

  beforeAll(async () => {
    committed = fs.mkdtempSync(path.join(os.tmpdir(), "pgstack-drift-cmd-"));
  });
  afterAll(() => fs.rmSync(committed, { recursive: true, force: true }));

  const snapshot = async () => writeStacks(committed, (await renderStackFiles(["perf"])).stacks, false);

  it("exit 0 and 'no drift' when the snapshot is what this commit renders", async () => {
    await snapshot();
    const r = await run(["perf", "--against", committed]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^no drift: this commit renders exactly .*\/ for 1 stack \(perf\)\n$/);
  });

  it("exit 1 and the setting old → new when a setting changed, in every format", async () => {
    await snapshot();
    fs.writeFileSync(conf(), fs.readFileSync(conf(), "utf8").replace(/^shared_buffers = 4GB/m, "shared_buffers = 2GB"));
    const text = await run(["perf", "--against", committed]);
    expect(text.code).toBe(1);
    expect(text.stdout).toContain("perf: 1 file changed\n  postgresql.conf: 1 setting changed\n    shared_buffers: 2GB → 4GB\n");
    const md = await run(["perf", "--against", committed, "--format", "markdown"]);
    expect(md.code).toBe(1);
    expect(md.stdout).toContain("| `shared_buffers` | `2GB` | `4GB` |");
    const json = await run(["perf", "--against", committed, "--format=json"]);
    expect(JSON.parse(json.stdout)).toMatchObject({ drift: true, stacks: [{ stack: "perf", change: "changed", files: [{ file: "postgresql.conf", settings: [{ name: "shared_buffers", old: "2GB", new: "4GB" }] }] }] });
  });

  it("exit 1 for a file the snapshot lacks, and for a stack directory whose stack is gone", async () => {
    await snapshot();
    fs.rmSync(path.join(committed, "perf", "hnsw-plan.sql"));
    fs.mkdirSync(path.join(committed, "retired"));
    fs.writeFileSync(path.join(committed, "retired", "memory-plan.yaml"), "node_memory: 1GB\n");
    const r = await run(["--against", committed]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout).toContain("  hnsw-plan.sql: added");
    expect(r.stdout).toContain("retired: stack removed");
  }, 300_000);

  it("--json is --format json", async () => {
    await snapshot();
    const r = await run(["perf", "--against", committed, "--json"]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ drift: false });
  });

  it.each([
    [["nosuchstack"], 'no stack "nosuchstack" (stacks: dev, perf, prod, staging)'],
    [["prdo"], 'no stack "prdo"; did you mean prod? (stacks: dev, perf, prod, staging)'],
    [["--format", "yaml"], '--format must be one of text, markdown, json, not "yaml"'],
    [["--json", "--format", "markdown"], "--json and --format markdown contradict each other; give one of them"],
    [["--url", "postgresql://x@h/db"], "--url belongs to --live"],
    [["--live", "--url", "postgresql://x@h/db"], "--live needs --stack NAME"],
    [["--live", "--stack", "prod"], "--live needs --url postgresql://user@host:port/database"],
    [["--live", "--stack", "prdo", "--url", "postgresql://x@h/db"], 'no stack "prdo"; did you mean prod? (stacks: dev, perf, prod, staging)'],
    [["--live", "--stack", "prod", "--url", "postgresql://x@h/db", "--against", "x"], "--against compares snapshots; it does not go with --live"],
    [["--against", "/nonexistent/rendered"], "--against /nonexistent/rendered does not exist"],
    [["--bogus"], "unknown option --bogus (options: --against, --live, --stack, --url, --pgbouncer-url, --rendered, --format, --json, -h/--help)"],
    [["--agianst", "x"], "unknown option --agianst; did you mean --against?"],
  ])("usage error for %j", async (args, message) => {
    const p = run(args as string[]);
    await expect(p).rejects.toBeInstanceOf(UsageError);
    await expect(p).rejects.toThrow(new UsageError(message));
  });

  it("live: an unparsable URL is one line and exit 2, with no password", async () => {
    const args = ["--live", "--stack", "prod", "--url", "postgresql://app:Sup3r-S3cret@host:port/app"];
    const r = await dispatch(args);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    // The reason's wording is drift/connection.ts's; here: one line, the URL named, the password masked.
    expect(r.stderr).toMatch(/^pgstack drift: --url "postgresql:\/\/app:\*\*\*@host:port\/app" is not a URL[^\n]*\n$/);
    expect(r.stderr).not.toContain("Sup3r-S3cret");
    const message = r.stderr.slice("pgstack drift: ".length, -1);
    // Asked for JSON, the same as a document on stdout, exit 2 (could not compare) there too, still masked.
    const json = await dispatch([...args, "--json"]);
    expect([json.code, JSON.parse(json.stdout), json.stderr]).toEqual([2, { error: { command: "drift", message, exitCode: 2 } }, `pgstack drift: ${message}\n`]);
  });

  it("a stack file that fails is exit 2 (could not compare), not 1 (drift)", async () => {
    const r = await dispatch(["nosuch"]);
    expect([r.code, r.stderr]).toEqual([2, 'pgstack drift: no stack "nosuch" (stacks: dev, perf, prod, staging)\n']);
  });
});
