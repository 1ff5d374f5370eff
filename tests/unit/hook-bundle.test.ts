/**
 * components/hook-bundle.ts: the hook bundle leaves Pulumi unparsed without changing a byte of the output, and
 * refuses to build a bundle that would require a package the `node` image does not have.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { buildSync } from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildHookBundle, unresolvedImports } from "../../components/hook-bundle";
import { projectRoot } from "../../cli/stack-file";

describe("the hook bundle", () => {
  let scratch: string;

  beforeAll(() => {
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), "pgstack-hook-bundle-"));
  });

  afterAll(() => {
    if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
  });

  /** A project whose cli/hook-entry.ts is `entry`, beside `files`. */
  function project(name: string, entry: string, files: Record<string, string> = {}): string {
    const root = path.join(scratch, name);
    for (const [rel, text] of Object.entries({ "cli/hook-entry.ts": entry, ...files })) {
      fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
      fs.writeFileSync(path.join(root, rel), text);
    }
    return root;
  }

  it("is byte for byte what esbuild makes when it parses Pulumi too", () => {
    const root = projectRoot();
    const parsedAll = buildSync({
      entryPoints: [path.join(root, "cli/hook-entry.ts")],
      bundle: true,
      platform: "node",
      target: "node20",
      format: "cjs",
      minify: true,
      legalComments: "none",
      write: false,
      absWorkingDir: root,
      external: ["pg-native"],
      logLevel: "silent",
    }).outputFiles[0].text;
    expect(buildHookBundle(root)).toBe(parsedAll);
  }, 60_000);

  it("builds a hook that needs only Node's own modules and pg's optional binding", () => {
    const entry = [
      `import { helper } from "./helper";`,
      `import * as fs from "node:fs";`,
      `import * as os from "os";`,
      `try { require("pg-native"); } catch {}`,
      `console.log(helper(), fs.existsSync("/"), os.EOL);`,
    ].join("\n");
    const root = project("fine", entry, { "cli/helper.ts": `export const helper = () => 42;\n` });
    expect(buildHookBundle(root)).toContain("42");
  });

  it("refuses a hook that reaches Pulumi, naming the file that imports it", () => {
    const root = project("pulumi", `import { main } from "./deploy";\nmain();\n`, {
      "cli/deploy.ts": `import * as pulumi from "@pulumi/pulumi";\nexport const main = () => pulumi.getStack();\n`,
    });
    expect(() => buildHookBundle(root)).toThrow(
      "the hook bundle would need packages the node image does not have: @pulumi/pulumi (imported by cli/deploy.ts). The hook (cli/hook-entry.ts) must not reach them.",
    );
  });

  it("lists every such import once, sorted, with each file that imports it", () => {
    const metafile = {
      inputs: {
        "cli/a.ts": { bytes: 1, imports: [{ path: "@pulumi/pulumi", kind: "import-statement" as const, external: true }] },
        "cli/b.ts": {
          bytes: 1,
          imports: [
            { path: "@pulumi/pulumi", kind: "import-statement" as const, external: true },
            { path: "@pulumi/kubernetes", kind: "require-call" as const, external: true },
            { path: "node:fs", kind: "import-statement" as const, external: true },
          ],
        },
      },
      outputs: {
        "out.js": {
          bytes: 1,
          inputs: {},
          exports: [],
          imports: [
            { path: "@pulumi/pulumi", kind: "require-call" as const, external: true },
            { path: "node:fs", kind: "require-call" as const, external: true },
            { path: "fs/promises", kind: "require-call" as const, external: true },
            { path: "pg-native", kind: "require-call" as const, external: true },
            { path: "@pulumi/kubernetes", kind: "require-call" as const, external: true },
            { path: "@pulumi/pulumi", kind: "require-call" as const, external: true },
          ],
        },
      },
    };
    expect(unresolvedImports(metafile)).toEqual(["@pulumi/kubernetes (imported by cli/b.ts)", "@pulumi/pulumi (imported by cli/a.ts, cli/b.ts)"]);
  });
});
