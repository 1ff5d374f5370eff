// pulumi up: stack config → StackSpec → Rendered → the components for spec.target → stack outputs.
// The module exports the program itself: Pulumi awaits it and makes the object it returns the stack's outputs
// (target, endpoints, connectionString, memoryPlan, hookJob or hookReport, warnings, and `deployed`: what the next deploy must not change).
// CommonJS needs `export =` for that; a default export is not unwrapped.
import { program } from "./program";

export = program;
