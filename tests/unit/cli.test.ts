/**
 * The pgstack command as one program: options parsed the same way everywhere (node:util parseArgs plus our checks),
 * one error line and the shared exit codes (2 usage, 1 failure, 0 ok), every command's --help generated from the
 * options it parses, lazy and typed command loading without import cycles, and the real CLI run as a child process
 * for the cases a user meets first.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { buildSync } from "esbuild";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { chosenFormat, commandHelp, formatOptions, jsonFailureHelp, jsonRequested, parseOptions } from "../../cli/args";
import { packageVersion, runCommand, versionCommand, type Command, type CommandTable } from "../../cli/command";
import { hookCommands } from "../../cli/hook-commands";
import { describeError, HelpRequested, UsageError, UserFacingError } from "../../cli/errors";
import { canaryCommand } from "../../cli/canary";
import { diffCommand } from "../../cli/diff";
import { driftCommand } from "../../cli/drift";
import { localCommand } from "../../cli/local";
import { allCommands } from "../../cli/main";
import { postdeployCommand } from "../../cli/postdeploy";
import { ttyProgress } from "../../cli/progress";
import { renderCommand, renderStackFiles } from "../../cli/render";
import { runtimeCommand } from "../../cli/runtime";
import { imagesCommand } from "../../cli/images";
import { checkStacks, loadStackSpecs, projectRoot, readStackConfig } from "../../cli/stack-file";

const root = projectRoot();
const pkg = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8")) as { version: string };

const options = {
  out: { type: "string", short: "o", value: "DIR", default: "rendered/", help: "where to write" },
  all: { type: "boolean", short: "a", help: "every stack" },
  ...formatOptions(["text", "json"], "how to print"),
} as const;

describe("parseOptions", () => {
  it("reads long, inline, short and boolean options; `--` ends the options", () => {
    expect(parseOptions(["prod", "--out", "d", "-a", "--format=json", "--", "--all"], options)).toEqual({
      values: { out: "d", all: true, format: "json" },
      positionals: ["prod", "--all"],
    });
    expect(parseOptions(["-o", "x", "-o=y"], options).values.out).toBe("=y");
    expect(parseOptions(["--out=-weird"], options).values.out).toBe("-weird");
  });

  it("keeps every value of a `multiple` option, in order; the last of any other", () => {
    const repeated = { image: { type: "string", value: "NAME", multiple: true, help: "an image" }, ...options } as const;
    const { values } = parseOptions(["--image", "postgres", "-o", "a", "--image=node", "-o", "b"], repeated);
    expect(values.image).toEqual(["postgres", "node"]);
    expect(values.out).toBe("b");
    expect(parseOptions([], repeated).values.image).toBeUndefined();
  });

  it.each([
    [["--outt", "x"], "unknown option --outt; did you mean --out?"],
    [["--alll"], "unknown option --alll; did you mean --all?"],
    [["-json"], "unknown option -json; did you mean --json?"],
    [["--bogus"], "unknown option --bogus (options: -o/--out, -a/--all, --format, --json, -h/--help)"],
    [["-x"], "unknown option -x (options: -o/--out, -a/--all, --format, --json, -h/--help)"],
    [["--out"], "--out needs a value (DIR)"],
    [["--out="], "--out needs a value (DIR), not an empty string"],
    [["--out", "--all"], "--out needs a value (DIR), not the option --all; write --out=--all if that is the value"],
    [["--all=yes"], "--all takes no value (got --all=yes)"],
  ])("refuses %j: %s", (args, message) => {
    let error: unknown;
    try {
      parseOptions(args, options);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(UsageError);
    expect((error as Error).message).toBe(message);
  });

  it("points --version after a command at pgstack's own version, as git, kubectl and pulumi do", () => {
    expect(() => parseOptions(["--version"], options)).toThrow(
      new UsageError("unknown option --version: the version is pgstack's own; run pgstack --version (or pgstack version)"),
    );
  });

  it.each([
    [["--json"], true],
    [["prod", "--format", "json"], true],
    [["--format=json"], true],
    [["--format", "json", "--format", "text"], false],
    [["--format", "text"], false],
    [["--outt", "x", "--json"], true],
    [["--", "--json"], false],
    [["--out=--json"], false],
    [[], false],
  ])("jsonRequested(%j) is %s", (args, wanted) => {
    expect(jsonRequested(args)).toBe(wanted);
  });

  it.each([[["-h"]], [["--help"]], [["--bogus", "--help"]], [["--out", "--help"]]])("%j asks for help", (args) => {
    expect(() => parseOptions(args, options)).toThrow(HelpRequested);
  });

  it("--json is --format json; both at odds is an error; --format is checked", () => {
    expect(chosenFormat({ json: true }, ["text", "json"])).toBe("json");
    expect(chosenFormat({}, ["text", "json"])).toBe("text");
    expect(() => chosenFormat({ json: true, format: "text" }, ["text", "json"])).toThrow("--json and --format text contradict each other; give one of them");
    expect(() => chosenFormat({ format: "yaml" }, ["text", "markdown", "json"])).toThrow('--format must be one of text, markdown, json, not "yaml"');
  });
});

describe("commandHelp", () => {
  it("lists every option from the table, with its value, what it does and its default, and -h/--help", () => {
    const help = commandHelp({ usage: ["pgstack x [--out DIR]"], description: ["Does x."], sections: [{ title: "options", options }] });
    expect(help).toBe(
      [
        "usage: pgstack x [--out DIR]",
        "",
        "Does x.",
        "",
        "options:",
        "  -o, --out DIR           where to write (default: rendered/)",
        "  -a, --all               every stack",
        "      --format text|json  how to print (default: text)",
        "      --json              the same as --format json: one JSON document on stdout, nothing else there",
        "  -h, --help              show this help and exit",
        "",
        "exit status:",
        ...jsonFailureHelp.map((l) => `  ${l}`),
        "",
      ].join("\n"),
    );
  });

  it("every command's help starts with its usage and lists -h/--help", () => {
    // The table's loaders require() .ts files, which only bin/pgstack.js (tsx) can: the end-to-end cases below run
    // each of them. Here the modules are imported directly.
    const commands: Record<string, Command> = { render: renderCommand, drift: driftCommand, diff: diffCommand, local: localCommand, canary: canaryCommand, postdeploy: postdeployCommand, runtime: runtimeCommand, images: imagesCommand };
    expect(Object.keys(commands)).toEqual(Object.keys(allCommands));
    for (const [name, command] of Object.entries({ ...commands, version: versionCommand })) {
      expect(command.help, name).toContain("  -h, --help ");
      expect(command.help, name).toMatch(/\nexit status:\n/);
      // Every command takes --format json, so every help says what a failure prints then.
      expect(command.help, name).toContain("      --json ");
      expect(command.help, name).toContain(jsonFailureHelp.map((l) => `  ${l}`).join("\n"));
    }
  });
});

interface Captured {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the dispatcher in this process with stdout and stderr captured. */
async function dispatch(table: CommandTable, argv: string[]): Promise<Captured> {
  let stdout = "";
  let stderr = "";
  const spies = [
    vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => ((stdout += String(chunk)), true)),
    vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => ((stderr += String(chunk)), true)),
    vi.spyOn(console, "log").mockImplementation((...parts: unknown[]) => void (stdout += `${parts.join(" ")}\n`)),
    vi.spyOn(console, "error").mockImplementation((...parts: unknown[]) => void (stderr += `${parts.join(" ")}\n`)),
  ];
  try {
    return { code: await runCommand(table, argv), stdout, stderr };
  } finally {
    for (const s of spies) s.mockRestore();
  }
}

describe("the dispatcher", () => {
  const thrower = (error: unknown): Command => ({
    help: "usage: pgstack boom\n",
    run: () => Promise.reject(error),
  });
  const table: CommandTable = {
    render: { summary: "renders", load: () => ({ help: "usage: pgstack render\n", run: async (args) => (args.includes("--help") ? Promise.reject(new HelpRequested()) : 0) }) },
    usage: { summary: "usage error", load: () => thrower(new UsageError("unknown option --outt; did you mean --out?")) },
    failing: { summary: "fails", load: () => thrower(new UserFacingError("Pulumi.prod.yaml:3:7: bad indentation of a mapping entry")) },
    spec: { summary: "spec", load: () => thrower(Object.assign(new Error('stack "prod" has 1 configuration error:\n  - node.memory "32" has no unit; write 32Gi'), { name: "SpecError" })) },
    bug: { summary: "bug", load: () => thrower(new TypeError("x is undefined")) },
  };

  it.each([
    [["rendr"], 2, 'pgstack: unknown command "rendr"; did you mean render?'],
    [["zzzzzz"], 2, 'pgstack: unknown command "zzzzzz" (commands: render, usage, failing, spec, bug, version)'],
    [["verson"], 2, 'pgstack: unknown command "verson"; did you mean version?'],
    [["--verison"], 2, "pgstack: unknown option --verison; did you mean --version? (name a command first: pgstack <command> --verison)"],
    [["usage"], 2, "pgstack usage: unknown option --outt; did you mean --out?"],
    [["failing"], 1, "pgstack failing: Pulumi.prod.yaml:3:7: bad indentation of a mapping entry"],
    [["spec"], 1, 'pgstack spec: stack "prod" has 1 configuration error:'],
    [["bug"], 1, "pgstack bug: unexpected error: x is undefined"],
    [["help", "rendr"], 2, 'pgstack: unknown command "rendr"; did you mean render?'],
  ])("%j: exit %i, stderr starts with %s, stdout empty", async (argv, code, first) => {
    const r = await dispatch(table, argv);
    expect(r.code).toBe(code);
    expect(r.stderr.split("\n")[0]).toBe(first);
    expect(r.stdout).toBe("");
  });

  it("a usage error or a failure is one line; only a bug carries its stack", async () => {
    expect((await dispatch(table, ["usage"])).stderr).toBe("pgstack usage: unknown option --outt; did you mean --out?\n");
    expect((await dispatch(table, ["failing"])).stderr).toBe("pgstack failing: Pulumi.prod.yaml:3:7: bad indentation of a mapping entry\n");
    expect((await dispatch(table, ["bug"])).stderr).toMatch(/^pgstack bug: unexpected error: x is undefined\n {4}at /);
  });

  it("asked for JSON, a failure is also a JSON document on stdout: message and exit code, the line still on stderr", async () => {
    const cases: [string[], string, string, number][] = [
      [["usage", "--json"], "usage", "unknown option --outt; did you mean --out?", 2],
      [["failing", "--format", "json"], "failing", "Pulumi.prod.yaml:3:7: bad indentation of a mapping entry", 1],
      [["failing", "--format=json"], "failing", "Pulumi.prod.yaml:3:7: bad indentation of a mapping entry", 1],
      [["bug", "--json"], "bug", "unexpected error: x is undefined", 1],
      [["version", "extra", "--json"], "version", 'unexpected argument "extra"', 2],
    ];
    for (const [argv, command, message, exitCode] of cases) {
      const r = await dispatch(table, argv);
      expect(r.code, argv.join(" ")).toBe(exitCode);
      expect(JSON.parse(r.stdout), argv.join(" ")).toEqual({ error: { command, message, exitCode } });
      expect(r.stderr.split("\n")[0]).toBe(`pgstack ${command}: ${message}`);
    }
    // A bug's stack trace is for the bug report on stderr, not in the document.
    const bug = await dispatch(table, ["bug", "--json"]);
    expect(bug.stderr).toMatch(/^pgstack bug: unexpected error: x is undefined\n {4}at /);
    expect(bug.stdout).not.toContain(" at ");
    // Help asked for with --json is still the help, and text.
    expect((await dispatch(table, ["render", "--json", "--help"])).stdout).toBe("usage: pgstack render\n");
  });

  it("the version: pgstack --version, -v and version (also in JSON); a command's --version points there", async () => {
    for (const argv of [["--version"], ["-v"], ["version"]]) {
      const r = await dispatch(table, argv);
      expect([r.code, r.stdout, r.stderr], argv.join(" ")).toEqual([0, `${pkg.version}\n`, ""]);
    }
    for (const argv of [["version", "--json"], ["--version", "--format", "json"]]) {
      const r = await dispatch(table, argv);
      expect([r.code, JSON.parse(r.stdout)], argv.join(" ")).toEqual([0, { version: pkg.version }]);
    }
    expect((await dispatch(table, ["version", "--help"])).stdout).toBe(versionCommand.help);
    expect((await dispatch(table, ["help", "version"])).stdout).toBe(versionCommand.help);
    expect((await dispatch(table, ["--help"])).stdout).toMatch(/\n {7}pgstack version\n[\s\S]*\n {2}version +print pgstack's version/);
  });

  it("help and version go to stdout with exit 0; no command is the help on stderr with exit 2", async () => {
    const version = await dispatch(table, ["--version"]);
    expect([version.code, version.stdout, version.stderr]).toEqual([0, `${pkg.version}\n`, ""]);
    expect((await dispatch(table, ["-v"])).stdout).toBe(`${pkg.version}\n`);
    const help = await dispatch(table, ["--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^usage: pgstack <command> \[options\]\n/);
    expect(help.stdout).toContain("\n  render   renders\n");
    const commandHelp = await dispatch(table, ["render", "--help"]);
    expect([commandHelp.code, commandHelp.stdout]).toEqual([0, "usage: pgstack render\n"]);
    expect((await dispatch(table, ["help", "render"])).stdout).toBe("usage: pgstack render\n");
    const bare = await dispatch(table, []);
    expect([bare.code, bare.stdout]).toEqual([2, ""]);
    expect(bare.stderr).toMatch(/^usage: pgstack <command>/);
  });

  it("masks secrets in what an error prints", () => {
    expect(describeError("local", new UserFacingError("cannot connect as app:hunter2@h"), { mask: (t) => t.replace("hunter2", "***") })).toEqual({
      code: 1,
      text: "pgstack local: cannot connect as app:***@h",
      message: "cannot connect as app:***@h",
    });
  });
});

describe("the command table", () => {
  it("lists every command, the hook's two among them, each loading its typed Command", () => {
    expect(Object.keys(allCommands)).toEqual(["render", "drift", "diff", "local", "canary", "postdeploy", "runtime", "images"]);
    expect(Object.keys(hookCommands)).toEqual(["canary", "postdeploy"]);
    expect(allCommands.canary).toBe(hookCommands.canary);
    expect(packageVersion).toBe(pkg.version);
  });

  it("has no import cycle: no module of cli/ imports cli/main.ts, and commands import only types of cli/command.ts", () => {
    for (const file of fs.readdirSync(path.join(root, "cli")).filter((f) => f.endsWith(".ts"))) {
      const text = fs.readFileSync(path.join(root, "cli", file), "utf8");
      expect(text, file).not.toMatch(/from "\.\/main"/);
      expect(text, file).not.toMatch(/require\("\.\/main"\)/);
      if (!["main.ts", "hook-entry.ts", "command.ts"].includes(file)) expect(text, file).not.toMatch(/^import \{[^}]*\} from "\.\/command"/m);
    }
  });
});

describe("stack files", () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgstack-cli-stacks-"));
    fs.writeFileSync(path.join(dir, "Pulumi.prod.yaml"), "config:\n  pgvector-stack:target: kubernetes\n");
    fs.writeFileSync(path.join(dir, "Pulumi.broken.yaml"), "config:\n  pgvector-stack:target: local\n   bad: [\n");
    fs.writeFileSync(path.join(dir, "Pulumi.list.yaml"), "- a\n- b\n");
    fs.writeFileSync(path.join(dir, "Pulumi.flat.yaml"), "config: 3\n");
    fs.writeFileSync(path.join(dir, "Pulumi.memory.yaml"), 'config:\n  pgvector-stack:target: kubernetes\n  pgvector-stack:node:\n    memory: "32"\n');
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const message = (f: () => unknown): { name: string; message: string } => {
    try {
      f();
    } catch (e) {
      return { name: (e as Error).name, message: (e as Error).message };
    }
    throw new Error("did not throw");
  };

  it("an unknown stack is a usage error with a suggestion and the stacks there are", () => {
    expect(message(() => readStackConfig("prdo", dir))).toEqual({ name: "UsageError", message: 'no stack "prdo"; did you mean prod? (stacks: broken, flat, list, memory, prod)' });
    expect(message(() => readStackConfig("zzzzzzzz", dir))).toEqual({ name: "UsageError", message: 'no stack "zzzzzzzz" (stacks: broken, flat, list, memory, prod)' });
    expect(message(() => readStackConfig("../etc/passwd", dir)).name).toBe("UsageError");
    expect(message(() => checkStacks(["prod", "a", "b"], dir))).toEqual({ name: "UsageError", message: 'no stacks "a", "b" (stacks: broken, flat, list, memory, prod)' });
  });

  it("several unknown names are one error, each with its own suggestion", () => {
    expect(message(() => checkStacks(["prdo", "lst", "zzzzzzzz"], dir))).toEqual({
      name: "UsageError",
      message: 'no stacks "prdo" (did you mean prod?), "lst" (did you mean list?), "zzzzzzzz" (stacks: broken, flat, list, memory, prod)',
    });
  });

  it("loadStackSpecs reports every stack's problem at once: files that do not parse, configs the gate refuses, unknown names", () => {
    const broken = `${path.join(dir, "Pulumi.broken.yaml")}:3:7: bad indentation of a mapping entry`;
    const list = `${path.join(dir, "Pulumi.list.yaml")}: a stack file is a mapping with a config: key, not a list`;
    const files = message(() => loadStackSpecs(["broken", "list", "memory"], dir));
    expect(files.name).toBe("UserFacingError");
    expect(files.message).toMatch(new RegExp(`^3 stacks have problems:\n  ${escape(broken)}\n  ${escape(list)}\n  stack "memory" has 1 configuration error:\n    - node\.memory "32" has no unit; write 32Gi`));
    // An unknown name among them makes it a usage error (exit 2), listed with the rest.
    const mixed = message(() => loadStackSpecs(["broken", "prdo", "list"], dir));
    expect(mixed).toEqual({ name: "UsageError", message: `3 stacks have problems:\n  no stack "prdo"; did you mean prod? (stacks: broken, flat, list, memory, prod)\n  ${broken}\n  ${list}` });
    // One problem is the same error as for that stack alone.
    expect(message(() => loadStackSpecs(["broken"], dir))).toEqual({ name: "UserFacingError", message: broken });
  });

  it("render and drift (renderStackFiles) check every stack before the program runs: every problem in one error", async () => {
    await expect(renderStackFiles(["broken", "list"], dir)).rejects.toThrow(/^2 stacks have problems:\n.*Pulumi\.broken\.yaml:3:7: .*\n.*Pulumi\.list\.yaml: /);
  });

  it("malformed YAML names the file, line and column, without js-yaml's excerpt or stack", () => {
    const file = path.join(dir, "Pulumi.broken.yaml");
    expect(message(() => readStackConfig("broken", dir))).toEqual({ name: "UserFacingError", message: `${file}:3:7: bad indentation of a mapping entry` });
    expect(message(() => readStackConfig("list", dir)).message).toBe(`${path.join(dir, "Pulumi.list.yaml")}: a stack file is a mapping with a config: key, not a list`);
    expect(message(() => readStackConfig("flat", dir)).message).toBe(`${path.join(dir, "Pulumi.flat.yaml")}: config must be a mapping of keys to values, not 3`);
  });
});

/** The real CLI, as a user runs it (as another user with `uid`). */
function pgstack(args: string[], cwd = root, uid?: number): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [path.join(root, "bin", "pgstack.js"), ...args], {
    cwd,
    encoding: "utf8",
    env: { ...process.env, FORCE_COLOR: "0" },
    ...(uid === undefined ? {} : { uid, gid: uid }),
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("bin/pgstack.js end to end", () => {
  let out: string;
  beforeAll(() => {
    out = fs.mkdtempSync(path.join(os.tmpdir(), "pgstack-cli-e2e-"));
  });
  afterAll(() => fs.rmSync(out, { recursive: true, force: true }));

  it.each([
    [["render", "nosuch"], 'pgstack render: no stack "nosuch" (stacks: dev, perf, prod, staging)'],
    [["render", "prdo"], 'pgstack render: no stack "prdo"; did you mean prod? (stacks: dev, perf, prod, staging)'],
    [["render", "perf", "--outt", "x"], "pgstack render: unknown option --outt; did you mean --out?"],
    [["drift", "--formatt", "json"], "pgstack drift: unknown option --formatt; did you mean --format?"],
    [["diff", "prod"], "pgstack diff: name exactly two stacks, not 1 (stacks: dev, perf, prod, staging)"],
    [["local", "pref"], 'pgstack local: unknown subcommand "pref"; did you mean perf?'],
    [["local", "up", "--stack", "nosuch"], 'pgstack local: no stack "nosuch" (stacks: dev, perf, prod, staging)'],
    [["canary", "--intervl", "5s"], "pgstack canary: unknown option --intervl; did you mean --interval?"],
    [["postdeploy", "--plna", "plan.json"], "pgstack postdeploy: unknown option --plna; did you mean --plan?"],
    [["runtime", "--jsn"], "pgstack runtime: unknown option --jsn; did you mean --json?"],
    [["rendr"], 'pgstack: unknown command "rendr"; did you mean render?'],
    [["render", "prdo", "zzzzzz"], 'pgstack render: no stacks "prdo" (did you mean prod?), "zzzzzz" (stacks: dev, perf, prod, staging)'],
    [["diff", "prdo", "stagin"], 'pgstack diff: no stacks "prdo" (did you mean prod?), "stagin" (did you mean staging?) (stacks: dev, perf, prod, staging)'],
    [["drift", "prdo", "zzzzzz"], 'pgstack drift: no stacks "prdo" (did you mean prod?), "zzzzzz" (stacks: dev, perf, prod, staging)'],
    [["render", "--version"], "pgstack render: unknown option --version: the version is pgstack's own; run pgstack --version (or pgstack version)"],
  ])("%j: exit 2 and one line on stderr", (args, line) => {
    const r = pgstack(args);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`${line}\n`);
    expect(r.stdout).toBe("");
  });

  it("--version and version print the package's version", () => {
    expect(pgstack(["--version"])).toEqual({ code: 0, stdout: `${pkg.version}\n`, stderr: "" });
    expect(pgstack(["version"])).toEqual({ code: 0, stdout: `${pkg.version}\n`, stderr: "" });
    expect(pgstack(["version", "--json"])).toEqual({ code: 0, stdout: `${JSON.stringify({ version: pkg.version })}\n`, stderr: "" });
  });

  it.each([
    [["render", "nosuch", "--json"], 2],
    [["render", "prdo", "zzzzzz", "--format", "json"], 2],
    [["drift", "nosuch", "--json"], 2],
    [["drift", "--live", "--stack", "prod", "--url", "notaurl", "--json"], 2],
    [["diff", "prod", "--json"], 2],
    [["local", "up", "--stack", "nosuch", "--json"], 2],
    [["canary", "--intervl", "5s", "--json"], 2],
    [["postdeploy", "--json"], 2],
    [["runtime", "--jsn", "--json"], 2],
    [["version", "extra", "--json"], 2],
  ])("%j fails with its line on stderr and a JSON error document on stdout", (args, code) => {
    const r = pgstack(args);
    expect(r.code).toBe(code);
    const line = r.stderr.trimEnd();
    expect(line.split("\n")).toHaveLength(1);
    const command = args[0];
    expect(JSON.parse(r.stdout)).toEqual({ error: { command, message: line.slice(`pgstack ${command}: `.length), exitCode: code } });
  });

  it("render --out that cannot be written: one line naming the path and why, exit 1, before any work", () => {
    const file = path.join(out, "a-file");
    fs.writeFileSync(file, "not a directory\n");
    expect(pgstack(["render", "prod", "--out", file])).toEqual({ code: 1, stdout: "", stderr: `pgstack render: cannot write to ${file}: it is a file, not a directory\n` });
    expect(pgstack(["render", "prod", "--out", path.join(file, "sub")])).toEqual({
      code: 1,
      stdout: "",
      stderr: `pgstack render: cannot write to ${path.join(file, "sub")}: ${file} is a file, not a directory\n`,
    });
    const json = pgstack(["render", "prod", "--out", file, "--json"]);
    expect([json.code, JSON.parse(json.stdout)]).toEqual([1, { error: { command: "render", message: `cannot write to ${file}: it is a file, not a directory`, exitCode: 1 } }]);
  });

  it("render --out into a directory this user may not write: one line, exit 1", () => {
    // /proc/1 takes no new entries, for root too (EPERM), on any Linux: no uid switch, which would need the checkout
    // to be readable by another user.
    const target = "/proc/1/rendered";
    const r = pgstack(["render", "perf", "--out", target]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/^pgstack render: cannot write to \/proc\/1\/rendered: \/proc\/1: (operation not permitted|permission denied)\n$/);
  }, 60_000);

  it("render --out leaves a file it did not write, says so, and drift reads no manifest", () => {
    const stackDir = path.join(out, "perf");
    fs.mkdirSync(stackDir, { recursive: true });
    fs.writeFileSync(path.join(stackDir, "important.txt"), "mine\n");
    const r = pgstack(["render", "perf", "--out", out]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^perf: \d+ files → .*perf\n$/);
    expect(r.stderr.split("\n")[0]).toBe(`note: ${stackDir}/important.txt was not written by pgstack; left as it is`);
    expect(fs.readFileSync(path.join(stackDir, "important.txt"), "utf8")).toBe("mine\n");
    expect(fs.existsSync(path.join(stackDir, ".pgstack-manifest.json"))).toBe(true);
    fs.rmSync(path.join(stackDir, "important.txt"));
    const drift = pgstack(["drift", "perf", "--against", out, "--format", "json"]);
    expect(drift.code).toBe(0);
    expect(JSON.parse(drift.stdout)).toMatchObject({ drift: false });
  });

  it("--format json / --json: one JSON document on stdout, notes and warnings only on stderr, no progress off a terminal", () => {
    const r = pgstack(["render", "perf", "--out", out, "--json"]);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as { out: string; stacks: { stack: string; files: string[]; removed: string[]; foreign: string[] }[] };
    expect(doc.out).toBe(out);
    expect(doc.stacks.map((s) => [s.stack, s.removed, s.foreign])).toEqual([["perf", [], []]]);
    expect(doc.stacks[0].files).toContain("postgresql.conf");
    expect(r.stderr).not.toMatch(/\r|\x1b\[|^(rendering|recording) /m);
  });

  it("render does not load the pg driver, the local runtime or the canary", () => {
    const script = [
      "const main = require('./cli/main.ts');",
      `main.main(['render', 'perf', '--out', ${JSON.stringify(out)}]).then((code) => {`,
      "  const loaded = Object.keys(require.cache).map((f) => f.split(require('path').sep).join('/'));",
      "  const bad = loaded.filter((f) => /node_modules\\/pg\\/|\\/local\\/runtime\\/|\\/cli\\/(canary|postdeploy|local|runtime)\\.ts$/.test(f));",
      "  process.stderr.write('LOADED ' + JSON.stringify(bad) + '\\n'); process.exitCode = code;",
      "});",
    ].join("\n");
    const r = spawnSync(process.execPath, ["-r", "tsx/cjs", "-e", script], { cwd: root, encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain("LOADED []\n");
  });
});

describe("progress of render, drift and diff", () => {
  function fakeStream(isTTY: boolean): NodeJS.WriteStream & { text: () => string } {
    let text = "";
    return Object.assign(Object.create(process.stderr) as NodeJS.WriteStream, {
      isTTY,
      columns: 60,
      write: (chunk: string) => ((text += chunk), true),
      text: () => text,
    });
  }

  it("draws one line in place on a terminal and erases it at the end", () => {
    const stream = fakeStream(true);
    const progress = ttyProgress(stream);
    progress.step("rendering prod (1/2)");
    progress.advance(0.5, "recording prod");
    progress.end();
    expect(stream.text()).toBe("\r\x1b[Krendering prod (1/2)\r\x1b[K[##########..........]  50 % recording prod\r\x1b[K");
  });

  it("takes a terminal that reports 0 columns (or none) as 80 wide, not 20", () => {
    const line = "recording Pulumi resources of dev, prod, staging (index.ts under mocks), 1 s";
    expect(line.length).toBeGreaterThan(60);
    for (const columns of [0, undefined]) {
      const stream = Object.assign(fakeStream(true), { columns });
      const progress = ttyProgress(stream);
      progress.step(line);
      expect(stream.text(), String(columns)).toBe(`\r\x1b[K${line}`);
    }
    const narrow = fakeStream(true);
    ttyProgress(narrow).step(line);
    expect(narrow.text()).toBe(`\r\x1b[K${line.slice(0, 58)}…`);
  });

  it("writes nothing off a terminal but warnings", () => {
    const stream = fakeStream(false);
    const progress = ttyProgress(stream);
    progress.step("rendering prod (1/2)");
    progress.advance(1);
    progress.warn("careful");
    progress.end();
    expect(stream.text()).toBe("warning: careful\n");
  });
});

describe("the hook bundle (cli/hook-entry.ts)", () => {
  it("carries canary and postdeploy, not the other commands, Pulumi or the local runtime, and runs", () => {
    const result = buildSync({
      entryPoints: [path.join(root, "cli/hook-entry.ts")],
      bundle: true,
      platform: "node",
      target: "node20",
      format: "cjs",
      write: false,
      absWorkingDir: root,
      external: ["pg-native"],
      logLevel: "silent",
      metafile: true,
    });
    const inputs = Object.keys(result.metafile.inputs);
    expect(inputs).toEqual(expect.arrayContaining(["cli/canary.ts", "cli/postdeploy.ts", "cli/command.ts"]));
    expect(inputs.filter((f) => /^cli\/(main|render|drift|diff|local|runtime|offline-program)\.ts$|^local\/|^components\/|@pulumi/.test(f))).toEqual([]);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgstack-hook-"));
    try {
      fs.writeFileSync(path.join(dir, "pgstack.js"), result.outputFiles[0].text);
      const run = (args: string[]) => spawnSync(process.execPath, [path.join(dir, "pgstack.js"), ...args], { cwd: dir, encoding: "utf8" });
      const help = run(["postdeploy", "--help"]);
      expect([help.status, help.stdout.split("\n")[0]]).toEqual([0, "usage: pgstack postdeploy --plan plan.json [--wait SECONDS] [--no-bench] [--rebuild-mismatched] [--format text|json]"]);
      const render = run(["render", "prod"]);
      expect([render.status, render.stderr]).toEqual([2, 'pgstack: unknown command "render" (commands: canary, postdeploy, version)\n']);
      expect(run(["--version"]).stdout).toBe(`${pkg.version}\n`);
      expect(run(["version"]).stdout).toBe(`${pkg.version}\n`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
