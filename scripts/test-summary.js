// Reads vitest's JSON report: prints "N passed, N failed, N skipped" and fails when anything was skipped or
// when no test ran against the real programs (tests/real/) — a green run that skipped the servers proves nothing.
const fs = require("node:fs");
const report = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
let passed = 0, failed = 0, skipped = 0, real = 0;
for (const file of report.testResults ?? []) {
  const isReal = /[\\/]tests[\\/]real[\\/]/.test(file.name);
  for (const t of file.assertionResults ?? []) {
    if (t.status === "passed") { passed++; if (isReal) real++; }
    else if (t.status === "failed") failed++;
    else skipped++;
  }
  if ((file.assertionResults ?? []).length === 0 && file.status === "failed") failed++;
}
console.log(`real-server tests passed: ${real}`);
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
if (failed > 0) process.exit(1);
if (skipped > 0) { console.error("skipped tests are not passed tests: un-skip or delete them"); process.exit(1); }
if (real === 0) { console.error("no real-server test ran"); process.exit(1); }
