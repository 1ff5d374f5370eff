// pulumi up: stack config → StackSpec → Rendered → the components for spec.target → stack outputs.
import { program } from "./program";

const outputs = program();

export const target = outputs.target;
export const endpoints = outputs.endpoints;
export const connectionString = outputs.connectionString;
export const directConnectionString = outputs.directConnectionString;
export const memoryPlan = outputs.memoryPlan;
export const hugePages = outputs.hugePages;
export const hookJob = outputs.hookJob;
export const hookReport = outputs.hookReport;
export const warnings = outputs.warnings;
