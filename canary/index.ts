/** The synthetic canary (`pgstack canary`): see canary/canary.ts for what it does, configs/canary.ts for its contract. */
export { Canary, type CanaryOptions, type ProbeResult, type RoundResult, type ScenarioOutcome } from "./canary";
export { describeReading, readTargetCertificate, type CertificateReading } from "./certificate";
export { CanaryMetrics } from "./metrics";
export { canarySql, type CanarySql, type CanaryStatement } from "./sql";
export { describeError, probeConnection } from "./connect";
