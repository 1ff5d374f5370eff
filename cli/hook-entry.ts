// Entry point of the bundled hook (components/hook-bundle.ts): only the commands that run inside a deployed target,
// so the bundle carries pg and the post-deploy code but not Pulumi, the local runtime or the renderers' CLI.
import { runCommand } from "./main";

runCommand({ postdeploy: () => require("./postdeploy").postdeployCommand }, process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
