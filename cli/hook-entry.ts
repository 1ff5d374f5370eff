// Entry point of the bundled CLI (components/hook-bundle.ts): only the commands that run inside a deployed target
// (the post-deploy hook and the canary),
// so the bundle carries pg and the post-deploy code but not Pulumi, the local runtime or the renderers' CLI.
import { runCommand } from "./main";

runCommand(
  { canary: () => require("./canary").canaryCommand, postdeploy: () => require("./postdeploy").postdeployCommand },
  process.argv.slice(2),
).then((code) => {
  process.exitCode = code;
});
