/**
 * The house rules of ../shared/ARCHITECTURE.md, checked on the import graph of every source file: no import cycles
 * (type-only imports, `require` and `import()` count: a cycle is a cycle to whoever reads the code), and each room
 * imports only what the rooms table allows. TypeScript's own pre-processor finds the imports.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";

const root = path.join(__dirname, "../..");
const rooms = ["configs", "postdeploy", "components", "local", "drift", "canary", "cli", "pgclient"];

function sourceFiles(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(full);
    return e.name.endsWith(".ts") && !e.name.endsWith(".d.ts") ? [full] : [];
  });
}

const files = [...rooms.flatMap((r) => sourceFiles(path.join(root, r))), path.join(root, "index.ts"), path.join(root, "program.ts")];

/** A relative specifier → the file it names (`./x` → x.ts or x/index.ts); packages → the package name. */
function resolve(from: string, specifier: string): string {
  if (!specifier.startsWith(".")) return specifier.startsWith("@") ? specifier.split("/").slice(0, 2).join("/") : specifier.split("/")[0];
  const base = path.resolve(path.dirname(from), specifier);
  for (const candidate of [base, `${base}.ts`, path.join(base, "index.ts")]) if (fs.existsSync(candidate) && fs.statSync(candidate).isFile()) return candidate;
  return base;
}

const imports = new Map<string, string[]>(
  files.map((file) => {
    const info = ts.preProcessFile(fs.readFileSync(file, "utf8"), true, true);
    return [file, info.importedFiles.map((f) => resolve(file, f.fileName))];
  }),
);

const rel = (file: string) => path.relative(root, file);
const roomOf = (file: string) => rel(file).split(path.sep)[0];

/** Tarjan's strongly connected components of the local import graph; every component of two or more is a cycle. */
function cycles(): string[][] {
  let index = 0;
  const indices = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string): void => {
    indices.set(v, index);
    low.set(v, index++);
    stack.push(v);
    onStack.add(v);
    for (const w of imports.get(v) ?? []) {
      if (!imports.has(w)) continue;
      if (!indices.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, indices.get(w)!));
    }
    if (low.get(v) === indices.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(rel(w));
      } while (w !== v);
      if (component.length > 1) found.push(component.sort());
    }
  };
  for (const file of files) if (!indices.has(file)) visit(file);
  return found;
}

/** What each room must never import (ARCHITECTURE.md, "Rooms and what each may touch"). */
const forbidden: Readonly<Record<string, readonly string[]>> = {
  configs: ["postdeploy", "components", "local", "drift", "canary", "cli", "pgclient", "@pulumi/pulumi", "@pulumi/kubernetes", "@pulumi/docker", "pg", "node:fs", "fs"],
  postdeploy: ["components", "local", "cli", "drift", "@pulumi/pulumi", "@pulumi/kubernetes", "@pulumi/docker"],
  components: ["local", "cli", "postdeploy", "drift", "canary", "pg", "pgclient"],
  local: ["components", "cli", "@pulumi/pulumi", "@pulumi/kubernetes", "@pulumi/docker"],
  drift: ["local", "components", "cli"],
  canary: ["local", "components", "cli", "drift", "@pulumi/pulumi"],
  pgclient: ["postdeploy", "components", "local", "drift", "canary", "cli", "@pulumi/pulumi"],
};

describe("the import graph", () => {
  it("sees the project's files", () => {
    expect(files.length).toBeGreaterThan(100);
  });

  it("has no cycles", () => {
    expect(cycles()).toEqual([]);
  });

  it.each(Object.entries(forbidden))("keeps %s out of the rooms it may not touch", (room, never) => {
    const breaches: string[] = [];
    for (const [file, targets] of imports) {
      if (roomOf(file) !== room) continue;
      for (const target of targets) {
        const where = path.isAbsolute(target) ? roomOf(target) : target;
        if (never.includes(where)) breaches.push(`${rel(file)} → ${path.isAbsolute(target) ? rel(target) : target}`);
      }
    }
    expect(breaches).toEqual([]);
  });
});
