/**
 * .github/workflows/drift.yml cannot run here; this checks what can be checked offline: it is valid YAML, runs on
 * pull requests, runs the tests, runs `pgstack drift --format markdown` (against rendered/ and the base branch's),
 * posts the report as one comment with only the permissions that needs, and previews with pulumi/actions only when
 * Pulumi credentials exist.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as yaml from "js-yaml";
import { describe, expect, it } from "vitest";
import { projectRoot } from "../../cli/stack-file";

interface Step {
  name?: string;
  uses?: string;
  run?: string;
  if?: string;
  with?: Record<string, unknown>;
  env?: Record<string, string>;
  id?: string;
}
interface Job {
  steps: Step[];
  permissions?: Record<string, string>;
  strategy?: { matrix: Record<string, unknown> };
  env?: Record<string, string>;
  "runs-on": string;
}
interface Workflow {
  name: string;
  on: Record<string, unknown>;
  permissions: Record<string, string>;
  jobs: Record<string, Job>;
}

const file = path.join(projectRoot(), ".github", "workflows", "drift.yml");
const workflow = yaml.load(fs.readFileSync(file, "utf8")) as Workflow;
const runs = (job: Job) => job.steps.map((s) => s.run ?? "").join("\n");

describe(".github/workflows/drift.yml", () => {
  it("is a workflow triggered by pull requests, read-only unless a job needs more", () => {
    expect(Object.keys(workflow.on)).toEqual(["pull_request"]);
    expect(workflow.permissions).toEqual({ contents: "read" });
    expect(Object.keys(workflow.jobs).sort()).toEqual(["drift", "preview", "test"]);
    for (const job of Object.values(workflow.jobs)) {
      expect(job["runs-on"]).toMatch(/^ubuntu-/);
      expect(Array.isArray(job.steps) && job.steps.length > 0).toBe(true);
      for (const step of job.steps) {
        expect(step.uses !== undefined || step.run !== undefined).toBe(true);
        // Every action is pinned to a major version at least.
        if (step.uses) expect(step.uses).toMatch(/^[\w-]+\/[\w-]+@v\d+/);
      }
    }
  });

  it("runs the project's tests (npm test: unit, mocks, real servers, then pgstack drift)", () => {
    expect(runs(workflow.jobs.test)).toMatch(/npm test/);
    expect(fs.readFileSync(path.join(projectRoot(), "scripts", "test.sh"), "utf8")).toContain("node bin/pgstack.js drift");
  });

  it("runs pgstack drift --format markdown against rendered/ and against the base branch's rendered/, then comments", () => {
    const job = workflow.jobs.drift;
    expect(job.permissions).toEqual({ contents: "read", "pull-requests": "write" });
    expect(runs(job)).toContain("npx pgstack drift --format markdown");
    expect(runs(job)).toContain('npx pgstack drift --against "$RUNNER_TEMP/base/rendered" --format markdown');
    expect(job.steps.find((s) => s.uses?.startsWith("actions/checkout"))?.with).toEqual({ "fetch-depth": 0 });
    const comment = job.steps.find((s) => s.uses?.startsWith("actions/github-script"));
    expect(String(comment?.with?.script)).toContain("<!-- pgstack-drift -->");
    expect(String(comment?.with?.script)).toContain("updateComment");
    // The job fails when the committed snapshot is stale, after the comment is posted.
    const last = job.steps[job.steps.length - 1];
    expect(last.if).toBe("steps.snapshot.outputs.code != '0'");
    expect(last.run).toContain("exit 1");
    expect(fs.existsSync(path.join(projectRoot(), "bin", "pgstack.js"))).toBe(true);
  });

  it("previews every cloud stack with pulumi/actions only when PULUMI_ACCESS_TOKEN is configured", () => {
    const job = workflow.jobs.preview;
    expect(job.strategy?.matrix.stack).toEqual(["dev", "staging", "prod"]);
    expect(job.env?.PULUMI_ACCESS_TOKEN).toBe("${{ secrets.PULUMI_ACCESS_TOKEN }}");
    const preview = job.steps.find((s) => s.uses?.startsWith("pulumi/actions@"));
    expect(preview?.if).toBe("steps.creds.outputs.ok == 'true'");
    expect(preview?.with).toMatchObject({ command: "preview", diff: true, "comment-on-pr": true });
    for (const stack of job.strategy?.matrix.stack as string[]) expect(fs.existsSync(path.join(projectRoot(), `Pulumi.${stack}.yaml`))).toBe(true);
  });
});
