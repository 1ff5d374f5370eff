/**
 * Schema checks for the Kubernetes objects a Pulumi program registers, as recorded by the mock harness.
 *
 * 1. kubernetes-models' validators (generated from the Kubernetes OpenAPI schema): types, enums, required fields.
 *    They accept unknown fields, so
 * 2. every key of the object is looked up in kubernetes-models' TypeScript declarations of the same schema, walked
 *    with the TypeScript checker: a misspelt field (`restartPolicy` on a Service, `sizelimit`) is reported with its
 *    path. Maps (`labels`, `data`, `resources.limits`) are index signatures and accept any key.
 *
 * cert-manager's Certificate is checked the same way with @kubernetes-models/cert-manager (generated from its CRDs).
 * Custom resources of the Prometheus Operator have no model in kubernetes-models; `crdShapes` lists the fields we
 * use, from the monitoring.coreos.com/v1 API reference, and is checked the same way.
 */
import path from "node:path";
import ts from "typescript";

export interface SchemaProblem {
  readonly path: string;
  readonly message: string;
}

const modelsRoot = path.dirname(require.resolve("kubernetes-models/package.json"));

/**
 * API groups of custom resources with a model package of their own (kubernetes-models' third-party packages, generated
 * from the projects' CRDs): @kubernetes-models/cert-manager for cert-manager.io.
 */
const thirdPartyRoots: Readonly<Record<string, string>> = {
  "cert-manager.io": path.dirname(require.resolve("@kubernetes-models/cert-manager/package.json")),
};

/** Pulumi type token → the model package's root, the module (relative to it), class and interface names. */
function modelFor(pulumiType: string): { root: string; module: string; kind: string } | null {
  const match = /^kubernetes:([^:]+):([A-Za-z]+)$/.exec(pulumiType);
  if (!match) return null;
  const [, groupVersion, kind] = match;
  const thirdParty = thirdPartyRoots[groupVersion.split("/")[0]];
  if (thirdParty) return { root: thirdParty, module: `${groupVersion}/${kind}`, kind };
  const dir = groupVersion.startsWith("core/") ? groupVersion.slice("core/".length) : groupVersion;
  return { root: modelsRoot, module: `${dir}/${kind}`, kind };
}

/** The kinds a program of this project registers; loaded into one TypeScript program up front (loading is slow). */
const knownModules = [
  "v1/ConfigMap",
  "v1/Namespace",
  "v1/Secret",
  "v1/Service",
  "apps/v1/Deployment",
  "apps/v1/StatefulSet",
  "batch/v1/Job",
  "networking.k8s.io/v1/NetworkPolicy",
  "policy/v1/PodDisruptionBudget",
].map((m) => path.join(modelsRoot, `${m}.d.ts`));
knownModules.push(path.join(thirdPartyRoots["cert-manager.io"], "cert-manager.io/v1/Certificate.d.ts"));

let program: ts.Program | null = null;

function checkerFor(file: string): { checker: ts.TypeChecker; source: ts.SourceFile } {
  if (!program || !program.getSourceFile(file)) {
    const roots = new Set([...knownModules, file, ...(program?.getRootFileNames() ?? [])]);
    program = ts.createProgram([...roots], { strict: true, noEmit: true, skipLibCheck: true, types: [], lib: ["lib.es5.d.ts"] });
  }
  const source = program.getSourceFile(file);
  if (!source) throw new Error(`cannot load ${file}`);
  return { checker: program.getTypeChecker(), source };
}

function declaredInterface(root: string, module: string, kind: string): { checker: ts.TypeChecker; type: ts.Type } {
  const file = path.join(root, `${module}.d.ts`);
  const { checker, source } = checkerFor(file);
  const moduleSymbol = checker.getSymbolAtLocation(source);
  const exported = moduleSymbol ? checker.getExportsOfModule(moduleSymbol) : [];
  const symbol = exported.find((s) => s.name === `I${kind}`);
  if (!symbol) throw new Error(`kubernetes-models ${module} has no interface I${kind}`);
  return { checker, type: checker.getDeclaredTypeOfSymbol(symbol) };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Walk `value` against the declared `type`; report keys the type does not declare. */
function walk(checker: ts.TypeChecker, value: unknown, type: ts.Type, at: string, problems: SchemaProblem[]): void {
  if (value === null || value === undefined) return;
  const t = checker.getNonNullableType(type);
  if (Array.isArray(value)) {
    const element = checker.isArrayType(t) ? checker.getTypeArguments(t as ts.TypeReference)[0] : undefined;
    if (!element) {
      problems.push({ path: at, message: `is a list, the schema says ${checker.typeToString(t)}` });
      return;
    }
    value.forEach((item, i) => walk(checker, item, element, `${at}[${i}]`, problems));
    return;
  }
  if (!isPlainObject(value)) return; // scalars: the kubernetes-models validator checks their types
  const members = t.isUnion() ? t.types : [t];
  const objectMembers = members.filter((m) => (m.flags & ts.TypeFlags.Object) !== 0);
  if (objectMembers.length === 0) {
    problems.push({ path: at, message: `is an object, the schema says ${checker.typeToString(t)}` });
    return;
  }
  for (const [key, child] of Object.entries(value)) {
    let childType: ts.Type | undefined;
    for (const member of objectMembers) {
      const prop = member.getProperty(key);
      if (prop) {
        childType = checker.getTypeOfSymbol(prop);
        break;
      }
      const index = checker.getIndexTypeOfType(member, ts.IndexKind.String);
      if (index) {
        childType = index;
        break;
      }
    }
    if (!childType) {
      problems.push({ path: `${at}.${key}`, message: `unknown field "${key}"` });
      continue;
    }
    walk(checker, child, childType, `${at}.${key}`, problems);
  }
}

/** A field list for objects without a model: nested objects, `[shape]` for lists, "*" for free maps, "" for scalars. */
type Shape = "" | "*" | { readonly [key: string]: Shape | readonly [Shape] };

const relabel: Shape = { sourceLabels: [""], separator: "", targetLabel: "", regex: "", modulus: "", replacement: "", action: "" };
const metadataShape: Shape = { name: "", namespace: "", labels: "*", annotations: "*" };
const labelSelector: Shape = { matchLabels: "*", matchExpressions: ["*"] };

/** monitoring.coreos.com/v1, the fields this project writes (Prometheus Operator API reference). */
export const crdShapes: Readonly<Record<string, Shape>> = {
  "kubernetes:monitoring.coreos.com/v1:PodMonitor": {
    apiVersion: "",
    kind: "",
    metadata: metadataShape,
    spec: {
      jobLabel: "",
      podTargetLabels: [""],
      selector: labelSelector,
      namespaceSelector: { any: "", matchNames: [""] },
      podMetricsEndpoints: [{ port: "", path: "", scheme: "", interval: "", scrapeTimeout: "", honorLabels: "", relabelings: [relabel], metricRelabelings: [relabel] }],
    },
  },
  "kubernetes:monitoring.coreos.com/v1:PrometheusRule": {
    apiVersion: "",
    kind: "",
    metadata: metadataShape,
    spec: { groups: [{ name: "", interval: "", limit: "", rules: [{ alert: "", record: "", expr: "", for: "", keep_firing_for: "", labels: "*", annotations: "*" }] }] },
  },
};

function walkShape(value: unknown, shape: Shape | readonly [Shape], at: string, problems: SchemaProblem[]): void {
  if (value === null || value === undefined || shape === "*") return;
  if (Array.isArray(shape)) {
    if (!Array.isArray(value)) problems.push({ path: at, message: "must be a list" });
    else value.forEach((v, i) => walkShape(v, shape[0], `${at}[${i}]`, problems));
    return;
  }
  if (shape === "") {
    if (isPlainObject(value) || Array.isArray(value)) problems.push({ path: at, message: "must be a scalar" });
    return;
  }
  if (!isPlainObject(value)) {
    problems.push({ path: at, message: "must be an object" });
    return;
  }
  const fields = shape as { readonly [key: string]: Shape | readonly [Shape] };
  for (const [key, child] of Object.entries(value)) {
    const childShape = fields[key];
    if (childShape === undefined) problems.push({ path: `${at}.${key}`, message: `unknown field "${key}"` });
    else walkShape(child, childShape, `${at}.${key}`, problems);
  }
}

/** Pulumi's marker of a secret value inside serialized inputs, as the mocks record them. */
const secretSig = "4dabf18193072939515e22adb298388d";
const secretSigValue = "1b47061264138c4ac30d75fd1eb44270";

/** Inputs as the object the API server would receive: secret markers replaced by their values. */
export function withoutSecretMarkers(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutSecretMarkers);
  if (!isPlainObject(value)) return value;
  if (value[secretSig] === secretSigValue) return withoutSecretMarkers(value.value);
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, withoutSecretMarkers(v)]));
}

/** Inputs with every value Pulumi holds as a secret replaced by "[secret]": what a non-secret input shows. */
export function redactedSecrets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redactedSecrets);
  if (!isPlainObject(value)) return value;
  if (value[secretSig] === secretSigValue) return "[secret]";
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactedSecrets(v)]));
}

interface ModelClass {
  new (data: unknown): { validate(): void };
}

/**
 * Every schema problem of one recorded object: `inputs` as the mock saw them (apiVersion, kind, metadata, spec …).
 * An empty list means the object is valid for the Kubernetes API and has no field the API does not know.
 */
export function schemaProblems(pulumiType: string, recordedInputs: Record<string, unknown>): SchemaProblem[] {
  const problems: SchemaProblem[] = [];
  const inputs = withoutSecretMarkers(recordedInputs) as Record<string, unknown>;
  const crd = crdShapes[pulumiType];
  if (crd) {
    walkShape(inputs, crd, "", problems);
    validateMetadataOnly(inputs, problems);
    return problems;
  }
  const model = modelFor(pulumiType);
  if (!model) return [{ path: "", message: `no schema for ${pulumiType}` }];
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const exports = require(path.join(model.root, model.module)) as Record<string, ModelClass>;
  const Model = exports[model.kind];
  if (!Model) return [{ path: "", message: `kubernetes-models has no ${model.module}` }];
  try {
    new Model(inputs).validate();
  } catch (e) {
    problems.push({ path: "", message: (e as Error).message });
  }
  const { checker, type } = declaredInterface(model.root, model.module, model.kind);
  walk(checker, inputs, type, "", problems);
  return problems;
}

/** Custom resources: metadata is a real ObjectMeta, so check it with the core model through a ConfigMap wrapper. */
function validateMetadataOnly(inputs: Record<string, unknown>, problems: SchemaProblem[]): void {
  const wrapped = { apiVersion: "v1", kind: "ConfigMap", metadata: inputs.metadata };
  for (const p of schemaProblems("kubernetes:core/v1:ConfigMap", wrapped)) problems.push({ path: p.path, message: `metadata: ${p.message}` });
}
