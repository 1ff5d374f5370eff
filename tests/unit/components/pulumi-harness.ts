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
        Object.assign(state, tlsState(args.type, args.name));
        // An image build: its digest (the local image ID, or the registry's after a push) names the tag it was built as.
        if (args.type === "docker:index/image:Image") state.repoDigest = `${String(args.inputs.imageName)}@sha256:mock`;
        if (args.type === "docker:index/remoteImage:RemoteImage") state.imageId = `${String(args.inputs.name)}@sha256:mock`;
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

/** A PEM block around a marker: what a fake key or certificate looks like under the mocks. */
export function mockPem(label: string, marker: string): string {
  return `-----BEGIN ${label}-----\n${marker}\n-----END ${label}-----\n`;
}

/** Marker of every fake private key (`mock-private-key-<resource>`): tests look for leaks of it. */
export const mockPrivateKeyPrefix = "mock-private-key-";

/**
 * @pulumi/tls outputs, which the mocks otherwise lack (they echo inputs): fake PEMs named after the resource. Keys
 * are returned as secrets, as @pulumi/tls marks them (additionalSecretOutputs is not applied under mocks).
 */
function tlsState(type: string, name: string): Record<string, unknown> {
  switch (type) {
    case "tls:index/privateKey:PrivateKey":
      return {
        privateKeyPem: pulumi.secret(mockPem("EC PRIVATE KEY", `${mockPrivateKeyPrefix}${name}`)),
        privateKeyPemPkcs8: pulumi.secret(mockPem("PRIVATE KEY", `${mockPrivateKeyPrefix}${name}-pkcs8`)),
        privateKeyOpenssh: pulumi.secret(mockPem("OPENSSH PRIVATE KEY", `${mockPrivateKeyPrefix}${name}-openssh`)),
        publicKeyPem: mockPem("PUBLIC KEY", `mock-public-key-${name}`),
      };
    case "tls:index/certRequest:CertRequest":
      return { certRequestPem: mockPem("CERTIFICATE REQUEST", `mock-certificate-request-${name}`) };
    case "tls:index/selfSignedCert:SelfSignedCert":
    case "tls:index/locallySignedCert:LocallySignedCert":
      return { certPem: mockPem("CERTIFICATE", `mock-certificate-${name}`), readyForRenewal: false, validityEndTime: "2000-01-01T00:00:00Z" };
    default:
      return {};
  }
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
