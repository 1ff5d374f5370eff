// Entry point of the bundled CLI (components/hook-bundle.ts): only the commands that run inside a deployed target
// (the post-deploy hook and the canary). It imports the dispatcher (cli/command.ts), not cli/main.ts, so esbuild
// bundles pg and the post-deploy and canary code but not Pulumi, the local runtime or the renderers.
import { runCommand } from "./command";
import { hookCommands } from "./hook-commands";

runCommand(hookCommands, process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
