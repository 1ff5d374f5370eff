/**
 * What `pulumi up` cannot change on a deployed stack, refused before any resource is created or changed (only the stack's own previous outputs are read first).
 *
 * - The data volume on Kubernetes: a StatefulSet's volumeClaimTemplates are immutable, @pulumi/kubernetes 4.x plans
 *   a delete-before-replace for any change to them (its diff lists `.spec.volumeClaimTemplates` as forceNew), and the
 *   recreated StatefulSet adopts the old claim unchanged — PostgreSQL goes down and nothing is resized. Growing the
 *   claim by hand and recording it (`kubernetes.storageResizedFrom`) is the way (docs/runbooks.md).
 * - The target and, on Kubernetes, the namespace: either would create a new, empty database beside (or instead of)
 *   the deployed one.
 * - The application database and role: the role bootstrap runs only when the server initialises an empty data
 *   directory, so PgBouncer and the applications would be pointed at a database or role the server does not have.
 *
 * The program records these as the stack output `deployed`, reads the previous deploy's record back through a
 * StackReference to its own stack, and compares.
 */
import * as pulumi from "@pulumi/pulumi";
import { k8sQuantity } from "../configs/kubernetes-resources";
import type { StackSpec, Target } from "../configs/stack-spec";

/** The stack output holding the record. */
export const deployedOutput = "deployed";

/** The data volume as the StatefulSet's claim template asks for it. */
export interface DeployedStorage {
  readonly sizeBytes: number;
  readonly storageClassName: string | null;
}

/** What the last `pulumi up` deployed, of the things it cannot change later. */
export interface DeployedRecord {
  readonly target: Target;
  readonly database: string;
  readonly appUser: string;
  /** Kubernetes only. */
  readonly namespace?: string;
  /** Kubernetes only. */
  readonly storage?: DeployedStorage;
}

export const runbookSection = "docs/runbooks.md#growing-the-data-volume";

/** The record this deploy will leave behind. */
export function deployedRecord(spec: StackSpec): DeployedRecord {
  const base = { target: spec.target, database: spec.postgres.database, appUser: spec.postgres.appUser };
  if (spec.target !== "kubernetes") return base;
  const k = spec.kubernetes;
  return { ...base, namespace: k.namespace, storage: { sizeBytes: k.storageSizeBytes, storageClassName: k.storageClassName } };
}

/** What the previous deploy left: its record, or that there was a deploy without one (before the record existed). */
export type Previous = { readonly kind: "none" } | { readonly kind: "unrecorded" } | { readonly kind: "recorded"; readonly record: DeployedRecord };

export interface GuardVerdict {
  /** Why `pulumi up` must stop, every reason; empty when the deploy may go ahead. */
  readonly refusals: readonly string[];
  /** Things to read that do not stop the deploy. */
  readonly warnings: readonly string[];
}

function className(name: string | null): string {
  return name === null ? "the cluster's default class" : `"${name}"`;
}

function storageProblems(previous: DeployedStorage, spec: StackSpec): GuardVerdict {
  const k = spec.kubernetes;
  if (previous.storageClassName !== k.storageClassName) {
    return {
      refusals: [
        `kubernetes.storageClassName changed from ${className(previous.storageClassName)} to ${className(k.storageClassName)} on a deployed stack. ` +
          `A PersistentVolumeClaim's class cannot change, and neither can the StatefulSet's volumeClaimTemplates: put the previous value back. ` +
          `Another class means a new volume: deploy a new stack on it and move the data there (see ${runbookSection}).`,
      ],
      warnings: [],
    };
  }
  const from = k8sQuantity(previous.sizeBytes);
  const to = k8sQuantity(k.storageSizeBytes);
  const recorded = k.storageResizedFromBytes;
  if (k.storageSizeBytes < previous.sizeBytes) {
    return {
      refusals: [
        `kubernetes.storageSize shrank from ${from} to ${to} on a deployed stack. A PersistentVolumeClaim can only grow: put ${from} back; ` +
          `a smaller volume means a new stack and moving the data there (see ${runbookSection}).`,
      ],
      warnings: [],
    };
  }
  if (k.storageSizeBytes > previous.sizeBytes && recorded !== previous.sizeBytes) {
    return {
      refusals: [
        `kubernetes.storageSize grew from ${from} to ${to} on a deployed stack. A StatefulSet's volumeClaimTemplates cannot change, so pulumi up ` +
          `cannot grow the volume: expand its claim with kubectl as ${runbookSection} says, then record it by also setting ` +
          `kubernetes.storageResizedFrom: ${from} and run pulumi up again.` +
          (recorded !== null ? ` (kubernetes.storageResizedFrom is ${k8sQuantity(recorded)}, but the deployed size is ${from}.)` : ""),
      ],
      warnings: [],
    };
  }
  if (k.storageSizeBytes === previous.sizeBytes && recorded !== null) {
    return { refusals: [], warnings: [`kubernetes.storageResizedFrom ${k8sQuantity(recorded)} records a resize already deployed (the volume is ${to}); remove it from the stack file`] };
  }
  return { refusals: [], warnings: [] };
}

/** Whether this deploy may go ahead, given what the previous one left. */
export function guardVerdict(previous: Previous, spec: StackSpec): GuardVerdict {
  if (previous.kind === "none") return { refusals: [], warnings: [] };
  if (previous.kind === "unrecorded") {
    // Deployed by a version that did not record anything: the record starts now, from the stack file, which the
    // StatefulSet's ignoreChanges keeps from reaching the live claim template anyway.
    return {
      refusals: [],
      warnings: [
        `this stack was deployed before pgvector-stack recorded what it deployed; the record starts now from the stack file` +
          (spec.target === "kubernetes"
            ? ` (namespace ${spec.kubernetes.namespace}, data volume ${k8sQuantity(spec.kubernetes.storageSizeBytes)}, ${className(spec.kubernetes.storageClassName)}): ` +
              `if the deployed claim differs (kubectl -n ${spec.kubernetes.namespace} get pvc), put its real size and class in the stack file`
            : ""),
      ],
    };
  }
  const was = previous.record;
  const now = deployedRecord(spec);
  const refusals: string[] = [];
  const warnings: string[] = [];
  if (was.target !== now.target) {
    refusals.push(
      `target changed from ${was.target} to ${now.target} on a deployed stack: that would delete the ${was.target} deployment and start an empty database on ${now.target}. ` +
        `Deploy a new stack for ${now.target} and move the data there.`,
    );
    return { refusals, warnings };
  }
  if (was.namespace !== undefined && now.namespace !== undefined && was.namespace !== now.namespace) {
    refusals.push(
      `kubernetes.namespace changed from ${was.namespace} to ${now.namespace} on a deployed stack: the database would be deleted from ${was.namespace} ` +
        `(its volume claim stays there) and started empty in ${now.namespace}. Put ${was.namespace} back, or deploy a new stack and move the data.`,
    );
  }
  for (const [key, before, after, what] of [
    ["postgres.database", was.database, now.database, "database"],
    ["postgres.appUser", was.appUser, now.appUser, "role"],
  ] as const) {
    if (before === after) continue;
    refusals.push(
      `${key} changed from ${before} to ${after} on a deployed stack: the server creates the application ${what} only when it initialises an empty ` +
        `data directory, so PgBouncer and the applications would be pointed at a ${what} it does not have. Put ${before} back, or deploy a new stack and move the data.`,
    );
  }
  if (was.storage !== undefined && spec.target === "kubernetes") {
    const storage = storageProblems(was.storage, spec);
    refusals.push(...storage.refusals);
    warnings.push(...storage.warnings);
  }
  return { refusals, warnings };
}

/**
 * The name of this very stack for a StackReference. Pulumi Cloud wants `org/project/stack`; a self-managed (DIY)
 * backend reports the organization "organization", and its older, non-project-scoped layout refuses names with a
 * slash, while both of its layouts resolve the bare stack name within the current project. An older CLI passes no
 * organization at all (getOrganization throws): the bare name then too.
 */
export function selfReferenceName(organization: () => string, project: string, stack: string): string {
  let org: string;
  try {
    org = organization();
  } catch {
    return stack;
  }
  return org === "organization" ? stack : `${org}/${project}/${stack}`;
}

/** Reads the previous deploy's record through a StackReference to this very stack (none on a first deploy). */
export async function previousDeploy(): Promise<Previous> {
  const self = new pulumi.StackReference(`${pulumi.getStack()}-previous-deploy`, {
    name: selfReferenceName(() => pulumi.getOrganization(), pulumi.getProject(), pulumi.getStack()),
  });
  const [record, target] = await Promise.all([self.getOutputDetails(deployedOutput), self.getOutputDetails("target")]);
  const value = (record.value ?? record.secretValue) as Partial<DeployedRecord> | undefined;
  if (value !== undefined && typeof value.target === "string" && typeof value.database === "string" && typeof value.appUser === "string") {
    return { kind: "recorded", record: value as DeployedRecord };
  }
  return (target.value ?? target.secretValue) === undefined ? { kind: "none" } : { kind: "unrecorded" };
}

/** Reads the previous deploy and stops the program with Pulumi's clean error when a change cannot be applied. */
export async function guardDeploy(spec: StackSpec): Promise<void> {
  const verdict = guardVerdict(await previousDeploy(), spec);
  if (verdict.refusals.length > 0) {
    throw new pulumi.RunError(
      `stack "${spec.stack}" cannot be updated as its config asks:\n${verdict.refusals.map((r) => `  - ${r}`).join("\n")}`,
    );
  }
  for (const warning of verdict.warnings) void pulumi.log.warn(warning);
}
