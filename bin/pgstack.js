#!/usr/bin/env node
// The pgstack command runs the TypeScript sources through tsx: no build step, the code you read is the code that runs.
require("tsx/cjs");
require("../cli/main.ts")
  .main(process.argv.slice(2))
  .then((code) => {
    process.exitCode = code;
  });
