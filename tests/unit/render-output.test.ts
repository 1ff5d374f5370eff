/**
 * `pgstack render` never removes what it did not write: a stack directory's manifest lists pgstack's files; a render
 * replaces those and removes only the ones it no longer writes; `render --all` removes a stale stack's directory only
 * when it is provably ours; drift never sees the manifest.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { readFiles, readTree } from "../../cli/drift";
import { writeStacks } from "../../cli/render";
import { checkOutputDir, manifestFile, pruneStaleStacks, writeStackDir } from "../../cli/rendered-dir";
import { compareRendered } from "../../drift/snapshot";

let out: string;
beforeEach(() => {
  out = fs.mkdtempSync(path.join(os.tmpdir(), "pgstack-render-out-"));
});
afterEach(() => fs.rmSync(out, { recursive: true, force: true }));

const write = (rel: string, text: string) => {
  fs.mkdirSync(path.dirname(path.join(out, rel)), { recursive: true });
  fs.writeFileSync(path.join(out, rel), text);
};
const exists = (rel: string) => fs.existsSync(path.join(out, rel));
const manifest = (stack: string) => JSON.parse(fs.readFileSync(path.join(out, stack, manifestFile), "utf8")) as { stack: string; files: string[] };
const plan = (stack: string) => `# Memory plan for stack "${stack}" (kubernetes)\nnode_memory: 32GB\n`;

describe("writeStackDir", () => {
  it("writes the files and a manifest of them; leaves and reports a file it did not write", () => {
    write("prod/important.txt", "mine\n");
    const report = writeStackDir(path.join(out, "prod"), "prod", { "postgresql.conf": "a = 1\n", "memory-plan.yaml": plan("prod"), "sub/x.yaml": "x\n" });
    expect(report).toEqual({
      stack: "prod",
      dir: path.join(out, "prod"),
      written: ["memory-plan.yaml", "postgresql.conf", "sub/x.yaml"],
      removed: [],
      foreign: ["important.txt"],
    });
    expect(fs.readFileSync(path.join(out, "prod/important.txt"), "utf8")).toBe("mine\n");
    expect(manifest("prod")).toMatchObject({ stack: "prod", files: ["memory-plan.yaml", "postgresql.conf", "sub/x.yaml"] });
  });

  it("removes what an earlier render wrote and this one does not (and the directory that empties), nothing else", () => {
    writeStackDir(path.join(out, "prod"), "prod", { "old.conf": "o\n", "sub/gone.yaml": "g\n", "postgresql.conf": "a = 1\n" });
    write("prod/notes.md", "mine\n");
    const report = writeStackDir(path.join(out, "prod"), "prod", { "postgresql.conf": "a = 2\n" });
    expect(report.removed).toEqual(["old.conf", "sub/gone.yaml"]);
    expect(report.foreign).toEqual(["notes.md"]);
    expect(exists("prod/old.conf") || exists("prod/sub")).toBe(false);
    expect(fs.readFileSync(path.join(out, "prod/postgresql.conf"), "utf8")).toBe("a = 2\n");
    expect(manifest("prod").files).toEqual(["postgresql.conf"]);
  });

  it("a directory rendered before manifests: only the names pgstack rendered then are its own", () => {
    write("prod/memory-plan.yaml", plan("prod"));
    write("prod/pg_hba.conf", "old\n");
    write("prod/custom.conf", "mine\n");
    const report = writeStackDir(path.join(out, "prod"), "prod", { "memory-plan.yaml": plan("prod"), "postgresql.conf": "a = 1\n" });
    expect(report.removed).toEqual(["pg_hba.conf"]);
    expect(report.foreign).toEqual(["custom.conf"]);
  });

  it("without a manifest or a memory plan of ours, nothing is removed", () => {
    write("prod/pg_hba.conf", "someone's\n");
    expect(writeStackDir(path.join(out, "prod"), "prod", { "postgresql.conf": "a\n" })).toMatchObject({ removed: [], foreign: ["pg_hba.conf"] });
    expect(exists("prod/pg_hba.conf")).toBe(true);
  });

  it("refuses to write into a path that is a file", () => {
    write("prod", "a file\n");
    expect(() => writeStackDir(path.join(out, "prod"), "prod", { "x.conf": "x\n" })).toThrow(`${path.join(out, "prod")} is a file, not a directory`);
  });

  it("turns a file system error into one line for a person: the path and the system's reason, no errno or call", () => {
    const thrown = (f: () => unknown): Error => {
      try {
        f();
      } catch (e) {
        return e as Error;
      }
      throw new Error("did not throw");
    };
    write("f", "a file\n");
    const under = thrown(() => writeStackDir(path.join(out, "f", "prod"), "prod", { "x.conf": "x\n" }));
    expect(under.name).toBe("UserFacingError");
    expect(under.message).toMatch(new RegExp(`^cannot write to ${out}/f(/prod)?: (it|${out}/f) is a file, not a directory$`));
    write("prod/postgresql.conf/inside", "a directory where a file goes\n");
    const isDir = thrown(() => writeStackDir(path.join(out, "prod"), "prod", { "postgresql.conf": "a = 1\n" }));
    expect([isDir.name, isDir.message]).toEqual(["UserFacingError", `cannot write to ${path.join(out, "prod", "postgresql.conf")}: illegal operation on a directory`]);
  });
});

describe("checkOutputDir (render --out, before any work)", () => {
  it("accepts a directory, or one that can be created", () => {
    expect(() => checkOutputDir(out)).not.toThrow();
    expect(() => checkOutputDir(path.join(out, "new", "deeper"))).not.toThrow();
  });

  it("refuses a file, or a path beneath one, naming it", () => {
    write("f", "a file\n");
    const file = path.join(out, "f");
    expect(() => checkOutputDir(file)).toThrow(`cannot write to ${file}: it is a file, not a directory`);
    expect(() => checkOutputDir(path.join(file, "a", "b"))).toThrow(`cannot write to ${path.join(file, "a", "b")}: ${file} is a file, not a directory`);
  });
});

describe("pruneStaleStacks (render --all)", () => {
  it("removes a stale stack that is provably ours, keeps one that holds a foreign file, leaves what is not ours", () => {
    writeStackDir(path.join(out, "retired"), "retired", { "postgresql.conf": "a\n", "sub/b.yaml": "b\n" });
    writeStackDir(path.join(out, "mixed"), "mixed", { "postgresql.conf": "a\n" });
    write("mixed/notes.md", "mine\n");
    write("legacy/memory-plan.yaml", plan("legacy"));
    write("legacy/postgresql.conf", "a\n");
    write("notours/memory-plan.yaml", "node_memory: 1GB\n");
    write("prod/postgresql.conf", "kept\n");
    write(".git/HEAD", "ref\n");
    const reports = pruneStaleStacks(out, new Set(["prod"]));
    expect(reports.map((r) => [r.stack, r.ours, r.removed, r.foreign])).toEqual([
      ["legacy", true, ["memory-plan.yaml", "postgresql.conf"], []],
      ["mixed", true, ["postgresql.conf"], ["notes.md"]],
      ["notours", false, [], ["memory-plan.yaml"]],
      ["retired", true, ["postgresql.conf", "sub/b.yaml"], []],
    ]);
    expect(fs.readdirSync(out).sort()).toEqual([".git", "mixed", "notours", "prod"]);
    expect(fs.readdirSync(path.join(out, "mixed"))).toEqual(["notes.md"]);
  });

  it("writeStacks prunes only with pruneOthers", () => {
    writeStackDir(path.join(out, "retired"), "retired", { "a.conf": "a\n" });
    const stacks = [{ stack: "prod", files: { "a.conf": "a\n" }, warnings: [] }];
    expect(writeStacks(out, stacks, false).pruned).toEqual([]);
    expect(exists("retired/a.conf")).toBe(true);
    expect(writeStacks(out, stacks, true).pruned.map((p) => p.stack)).toEqual(["retired"]);
    expect(exists("retired")).toBe(false);
  });
});

describe("drift reads no manifest", () => {
  it("a tree written with manifests compares equal to the same files without them", () => {
    const files = { "postgresql.conf": "shared_buffers = 4GB\n", "memory-plan.yaml": plan("prod") };
    writeStacks(out, [{ stack: "prod", files, warnings: [] }], false);
    expect(exists(`prod/${manifestFile}`)).toBe(true);
    expect(readFiles(path.join(out, "prod"))).toEqual(files);
    expect(compareRendered({ prod: files }, readTree(out)).drift).toBe(false);
  });
});
