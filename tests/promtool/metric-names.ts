/**
 * What the rule expressions read, found by parsing them with Prometheus's own PromQL grammar
 * (@prometheus-io/lezer-promql), not by pattern matching: every vector selector with its label matchers, and the
 * `by (…)` labels each aggregation expects its inner selectors to carry.
 */
import { parser } from "@prometheus-io/lezer-promql";
import { isAlertingRule, type RuleGroups } from "../../configs/alerts";

export interface LabelMatcher {
  readonly label: string;
  readonly op: "=" | "!=" | "=~" | "!~";
  readonly value: string;
}

export interface SelectorUse {
  readonly metric: string;
  readonly matchers: readonly LabelMatcher[];
  /** Labels of every enclosing `by (…)` aggregation: the selector's series must carry them. */
  readonly groupedBy: readonly string[];
  /** The rule (record name or alert name) the selector appears in. */
  readonly rule: string;
}

/** @lezer/common's SyntaxNode, named through the parser so that package need not be a direct dependency. */
type SyntaxNode = ReturnType<typeof parser.parse>["topNode"];

function text(expr: string, node: SyntaxNode): string {
  return expr.slice(node.from, node.to);
}

/** PromQL string literal → its value (double- or single-quoted; backticks are raw). */
function stringValue(literal: string): string {
  if (literal.startsWith("`")) return literal.slice(1, -1);
  if (literal.startsWith("'")) return JSON.parse(`"${literal.slice(1, -1).replace(/\\'/g, "'").replace(/"/g, '\\"')}"`) as string;
  return JSON.parse(literal) as string;
}

function byLabels(expr: string, aggregate: SyntaxNode): string[] {
  const modifier = aggregate.getChild("AggregateModifier");
  if (!modifier || !modifier.getChild("By")) return [];
  const grouping = modifier.getChild("GroupingLabels");
  return grouping ? grouping.getChildren("LabelName").map((n) => text(expr, n)) : [];
}

/** Every vector selector of one expression. Throws on a syntax error, naming the expression. */
export function selectorsIn(expr: string, rule = ""): SelectorUse[] {
  const tree = parser.parse(expr);
  const found: SelectorUse[] = [];
  tree.iterate({
    enter(ref) {
      if (ref.type.isError) throw new Error(`PromQL syntax error at ${ref.from} in ${rule}: ${expr}`);
      if (ref.name !== "VectorSelector") return;
      const node = ref.node;
      const identifier = node.getChild("Identifier");
      const matchers: LabelMatcher[] = [];
      for (const m of node.getChild("LabelMatchers")?.getChildren("UnquotedLabelMatcher") ?? []) {
        const label = text(expr, m.getChild("LabelName")!);
        const op = text(expr, m.getChild("MatchOp")!) as LabelMatcher["op"];
        matchers.push({ label, op, value: stringValue(text(expr, m.getChild("StringLiteral")!)) });
      }
      const nameMatcher = matchers.find((m) => m.label === "__name__" && m.op === "=");
      const metric = identifier ? text(expr, identifier) : (nameMatcher?.value ?? "");
      if (metric === "") throw new Error(`selector without a metric name in ${rule}: ${text(expr, node)}`);
      const groupedBy: string[] = [];
      for (let p = node.parent; p; p = p.parent) if (p.name === "AggregateExpr") groupedBy.push(...byLabels(expr, p));
      found.push({ metric, matchers: matchers.filter((m) => m.label !== "__name__"), groupedBy: [...new Set(groupedBy)], rule });
    },
  });
  return found;
}

/** Every selector of every rule. */
export function selectorsOfRules(rules: RuleGroups): SelectorUse[] {
  return rules.groups.flatMap((g) => g.rules.flatMap((r) => selectorsIn(r.expr, isAlertingRule(r) ? r.alert : r.record)));
}

/** Names defined by recording rules in the same rules. */
export function recordedNames(rules: RuleGroups): Set<string> {
  return new Set(rules.groups.flatMap((g) => g.rules.flatMap((r) => (isAlertingRule(r) ? [] : [r.record]))));
}

/** Metric names read from sources: selectors minus recording-rule names. */
export function sourceMetricNames(rules: RuleGroups): string[] {
  const recorded = recordedNames(rules);
  return [...new Set(selectorsOfRules(rules).map((s) => s.metric))].filter((m) => !recorded.has(m)).sort();
}

/** Does a label value satisfy a matcher? PromQL regexes are fully anchored. */
export function matches(m: LabelMatcher, value: string | undefined): boolean {
  const v = value ?? "";
  switch (m.op) {
    case "=":
      return v === m.value;
    case "!=":
      return v !== m.value;
    case "=~":
      return new RegExp(`^(?:${m.value})$`).test(v);
    case "!~":
      return !new RegExp(`^(?:${m.value})$`).test(v);
  }
}
