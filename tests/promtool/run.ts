/**
 * By hand: `npx tsx tests/promtool/run.ts [file.yml …]`. Renders rules.yml with the default thresholds next to
 * copies of the test files, then runs `promtool check rules` and `promtool test rules` with the rig's promtool 2.53
 * (native, or the Debian 13 rootfs). tests/real/promtool.test.ts does the same under vitest.
 */
import { promtool } from "../../local/runtime";
import { promtoolRulesFile, promtoolTestFiles, promtoolWorkspace } from "./fixture";

async function main(): Promise<number> {
  const files = promtoolWorkspace();
  const tests = process.argv.length > 2 ? process.argv.slice(2) : Object.keys(promtoolTestFiles());
  const check = await promtool(["check", "rules", promtoolRulesFile], files);
  process.stdout.write(check.stdout + check.stderr);
  const test = await promtool(["test", "rules", ...tests], files);
  process.stdout.write(test.stdout + test.stderr);
  return check.code === 0 && test.code === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error);
    process.exit(2);
  },
);
