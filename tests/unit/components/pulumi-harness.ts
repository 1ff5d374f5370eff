/**
 * Pulumi's official unit-test mocks (`pulumi.runtime.setMocks`), recording every resource the program registers.
 * Await outputs with `outputOf` before asserting: an assertion inside an un-awaited `apply` proves nothing.
 */
import * as pulumi from "@pulumi/pulumi";

export interface RecordedResource {
  readonly type: string;
  readonly name: string;
  readonly inputs: Record<string, unknown>;
}

export function installMocks(config: Record<string, string> = {}, project = "pgvector-stack", stack = "test"): RecordedResource[] {
  const recorded: RecordedResource[] = [];
  pulumi.runtime.setAllConfig(config);
  pulumi.runtime.setMocks(
    {
      newResource(args: pulumi.runtime.MockResourceArgs): { id: string; state: Record<string, unknown> } {
        recorded.push({ type: args.type, name: args.name, inputs: args.inputs });
        const state: Record<string, unknown> = { ...args.inputs };
        // Generated passwords: a fixed, obviously fake value so tests can look for leaks of it.
        if (args.type === "random:index/randomPassword:RandomPassword") state.result = `mock-password-${args.name}`;
        return { id: `${args.name}-id`, state };
      },
      call(args: pulumi.runtime.MockCallArgs) {
        return args.inputs;
      },
    },
    project,
    stack,
    false,
  );
  return recorded;
}

export function outputOf<T>(output: pulumi.Output<T> | pulumi.Input<T>): Promise<T> {
  return new Promise((resolve) => pulumi.output(output).apply((v) => resolve(v as T)));
}

/** Wait until the program has registered its resources (mocks answer asynchronously). */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}

export function byType(recorded: readonly RecordedResource[], type: string): RecordedResource[] {
  return recorded.filter((r) => r.type === type);
}

export function one(recorded: readonly RecordedResource[], type: string, nameIncludes = ""): RecordedResource {
  const found = recorded.filter((r) => r.type === type && r.name.includes(nameIncludes));
  if (found.length !== 1) {
    throw new Error(`expected one ${type} named *${nameIncludes}*, found ${found.length}: ${found.map((f) => f.name).join(", ")}`);
  }
  return found[0];
}
