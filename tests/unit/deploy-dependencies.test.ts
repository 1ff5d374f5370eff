/**
 * `npm ci --omit=dev && pulumi up` must work: the Pulumi program may load nothing at deploy time that only a dev
 * install brings. The program (index.ts) runs for every stack that registers resources, under the offline runner's
 * mocks, in a Node process of its own (so its module cache holds only what this run loaded); then every module
 * reachable from index.ts is checked:
 * - a package the project's own code loads must be listed in package.json `dependencies` — not in devDependencies,
 *   and not merely present because some other package happens to depend on it (esbuild came with tsx that way);
 * - every package loaded at all, and each optional dependency it ships a native binary in (esbuild's
 *   @esbuild/<platform>), must be one npm installs without dev dependencies (package-lock.json: not `dev`).
 *
 * Why not `npm ci --omit=dev --offline` into a copy and render there: that is the literal check, and it passes for this
 * tree, but it takes half a minute or more on two busy cores and needs the npm cache to hold every package; this test
 * reads the same facts npm decides with (package.json and the lock file) in a few seconds, and names the file that
 * loads the offending package.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import ts from "typescript";
import { beforeAll, describe, expect, it } from "vitest";
import { programConfig, programFile } from "../../cli/offline-program";
import { listStacks, projectRoot } from "../../cli/stack-file";

const root = projectRoot();
const program = path.join(root, programFile);
const inPackage = `${path.sep}node_modules${path.sep}`;

interface LoadEdge {
  readonly from: string;
  readonly to: string;
}

/** Every require edge reachable from index.ts, after the program ran for each stack (children of each module). */
function loadGraph(stacks: readonly string[]): LoadEdge[] {
  const script = `
const { recordStackHere } = require(${JSON.stringify(path.join(root, "cli/offline-program.ts"))});
const program = ${JSON.stringify(program)};
(async () => {
  const edges = new Map();
  for (const stack of ${JSON.stringify(stacks)}) {
    await recordStackHere(stack, program, ${JSON.stringify(root)});
    // recordStackHere evaluates the project's modules afresh for every stack: collect after each.
    const seen = new Set();
    const walk = (m) => {
      if (seen.has(m)) return;
      seen.add(m);
      for (const c of m.children) {
        edges.set(m.filename + "\\0" + c.filename, { from: m.filename, to: c.filename });
        walk(c);
      }
    };
    walk(require.cache[program]);
  }
  require("node:fs").writeFileSync(process.env.PGSTACK_TEST_GRAPH, JSON.stringify([...edges.values()]));
})().catch((e) => { console.error(e); process.exit(1); });
`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgstack-deploy-deps-"));
  try {
    const graph = path.join(dir, "graph.json");
    const run = spawnSync(process.execPath, ["--require", require.resolve("tsx/cjs"), "-e", script], {
      cwd: root,
      encoding: "utf8",
      env: { ...process.env, PGSTACK_TEST_GRAPH: graph },
    });
    if (run.status !== 0) throw new Error(`the program failed under mocks:\n${run.stderr}`);
    return JSON.parse(fs.readFileSync(graph, "utf8")) as LoadEdge[];
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * `/x/node_modules/@scope/name/node_modules/dep/a.js` → `node_modules/@scope/name/node_modules/dep`, the package's key
 * in package-lock.json (from the first node_modules on: a symlinked node_modules resolves outside the project).
 */
function packageKey(file: string): string {
  const posix = file.split(path.sep).join("/");
  const m = /\/(node_modules\/(?:.*\/node_modules\/)?(?:@[^/]+\/)?[^/]+)\//.exec(posix);
  if (!m) throw new Error(`${file} is not inside a package`);
  return m[1];
}

function packageName(key: string): string {
  return key.slice(key.lastIndexOf("node_modules/") + "node_modules/".length);
}

interface LockEntry {
  readonly dev?: boolean;
  readonly optionalDependencies?: Record<string, string>;
}

/** Where npm puts `name` for the package at `from`: nested under it first, then up the tree, as Node resolves. */
function resolveInLock(lock: Record<string, LockEntry>, from: string, name: string): string | undefined {
  for (let dir = from; ; dir = dir.slice(0, Math.max(0, dir.lastIndexOf("/node_modules/")))) {
    const key = dir === "" ? `node_modules/${name}` : `${dir}/node_modules/${name}`;
    if (lock[key]) return key;
    if (dir === "") return undefined;
  }
}

describe("the Pulumi program needs no dev dependency at deploy time", () => {
  const manifest = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8")) as {
    dependencies?: Record<string, string>;
    devDependencies?: Record<string, string>;
  };
  const lock = (JSON.parse(fs.readFileSync(path.join(root, "package-lock.json"), "utf8")) as { packages: Record<string, LockEntry> }).packages;
  const stacks = listStacks(root).filter((s) => programConfig(s, root).target !== "local");
  let edges: LoadEdge[];

  beforeAll(() => {
    edges = loadGraph(stacks);
  }, 120_000);

  it("runs the program for every stack that registers resources, one per target at least", () => {
    const targets = new Set(stacks.map((s) => programConfig(s, root).target));
    expect([...targets].sort()).toEqual(["docker", "kubernetes"]);
    expect(edges.some((e) => e.to.endsWith(`${path.sep}components${path.sep}hook-bundle.ts`))).toBe(true);
  });

  it("lists every package the project's own code loads in package.json dependencies", () => {
    const wrong = new Map<string, Set<string>>();
    for (const { from, to } of edges) {
      if (from.includes(inPackage) || !to.includes(inPackage)) continue;
      const name = packageName(packageKey(to));
      if (manifest.dependencies?.[name] !== undefined) continue;
      const where = manifest.devDependencies?.[name] !== undefined ? "devDependencies only" : "neither dependencies nor devDependencies";
      const key = `${name} (package.json: ${where})`;
      wrong.set(key, (wrong.get(key) ?? new Set()).add(path.relative(root, from)));
    }
    expect([...wrong].map(([pkg, files]) => `${pkg}, loaded by ${[...files].sort().join(", ")}`)).toEqual([]);
  });

  it("loads only packages that npm installs without dev dependencies, native binaries included", () => {
    const loaded = new Set(edges.filter((e) => e.to.includes(inPackage)).map((e) => packageKey(e.to)));
    expect(loaded.size).toBeGreaterThan(10);
    const devOnly: string[] = [];
    for (const key of [...loaded].sort()) {
      const entry = lock[key];
      if (!entry) devOnly.push(`${key}: not in package-lock.json`);
      else if (entry.dev) devOnly.push(`${key}: dev only`);
      for (const optional of Object.keys(entry?.optionalDependencies ?? {})) {
        const at = resolveInLock(lock, key, optional);
        if (at !== undefined && fs.existsSync(path.join(root, at)) && lock[at].dev) devOnly.push(`${at} (optional dependency of ${key}): dev only`);
      }
    }
    expect(devOnly).toEqual([]);
  });
});

/**
 * Pulumi's Node.js host type-checks index.ts with ts-node before it runs it (Pulumi.yaml `typescript: true`, ts-node
 * without transpile-only), with this project's tsconfig.json: every declaration file the program's import graph
 * resolves must come from a package npm installs without dev dependencies, or `npm ci --omit=dev && pulumi up` stops
 * at "Could not find a declaration file for module 'js-yaml'". tsx, which runs the offline program, never type-checks,
 * so the load graph above cannot see this.
 */
describe("the Pulumi program type-checks without dev dependencies", () => {
  const manifest = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8")) as { dependencies?: Record<string, string> };
  const lock = (JSON.parse(fs.readFileSync(path.join(root, "package-lock.json"), "utf8")) as { packages: Record<string, LockEntry> }).packages;

  function compiled(): ts.Program {
    const configFile = ts.readConfigFile(path.join(root, "tsconfig.json"), (f) => fs.readFileSync(f, "utf8"));
    const { options } = ts.parseJsonConfigFileContent(configFile.config, ts.sys, root);
    return ts.createProgram([program], { ...options, noEmit: true });
  }

  it("needs only packages npm installs without dev dependencies, each a direct dependency where our code names it", () => {
    const tsProgram = compiled();
    const errors = ts.getPreEmitDiagnostics(tsProgram).map((d) => ts.flattenDiagnosticMessageText(d.messageText, "\n"));
    expect(errors).toEqual([]);
    const problems = new Set<string>();
    for (const file of tsProgram.getSourceFiles()) {
      if (!file.fileName.includes("/node_modules/")) continue;
      const key = packageKey(path.resolve(file.fileName));
      if (lock[key] === undefined) problems.add(`${key}: not in package-lock.json`);
      else if (lock[key].dev) problems.add(`${key}: dev only, yet the type check reads ${path.relative(root, file.fileName)}`);
    }
    // What our own code names (the compiler's default types: @types/node through tsconfig "types") must be a direct
    // dependency, not present only because @pulumi/pulumi happens to pull it in today.
    for (const direct of ["typescript", "@types/node", "@types/js-yaml"]) {
      if (manifest.dependencies?.[direct] === undefined) problems.add(`${direct}: needed by the deploy-time type check, not in package.json dependencies`);
    }
    expect([...problems].sort()).toEqual([]);
  }, 120_000);
});
