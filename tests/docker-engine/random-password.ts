/**
 * random.RandomPassword as terraform-provider-random 3.x makes it (internal/provider/string.go createRandomString):
 * first the minimum number of characters of each class, then the rest from every enabled class, then shuffled; drawn
 * from node:crypto. Output not made: bcryptHash (no bcrypt here).
 */
import { randomInt } from "node:crypto";
import type { MockResult } from "./tls-resources";
import { type ResourceInputs, secretWrapper } from "./resource-inputs";

export const randomPasswordType = "random:index/randomPassword:RandomPassword";

const lowerChars = "abcdefghijklmnopqrstuvwxyz";
const upperChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const numericChars = "0123456789";
const specialChars = "!@#$%&*()-_=+[]{}<>:?";

function draw(charset: string, count: number): string[] {
  return Array.from({ length: count }, () => charset[randomInt(charset.length)]);
}

export function randomPassword(inputs: ResourceInputs): MockResult {
  const length = inputs.integer("length");
  if (length === undefined || length < 1) throw inputs.error(`input "length" is required and must be at least 1`);
  const upper = inputs.boolean("upper") ?? true;
  const lower = inputs.boolean("lower") ?? true;
  // `number` is the deprecated spelling of `numeric`; the provider honours either being false.
  const numeric = (inputs.boolean("numeric") ?? true) && (inputs.boolean("number") ?? true);
  const special = inputs.boolean("special") ?? true;
  const specials = inputs.string("overrideSpecial") || specialChars;
  const min = { upper: inputs.integer("minUpper") ?? 0, lower: inputs.integer("minLower") ?? 0, numeric: inputs.integer("minNumeric") ?? 0, special: inputs.integer("minSpecial") ?? 0 };
  // keepers only decide when the password is replaced: nothing to do on create.
  inputs.accept("keepers");
  inputs.refuseUnread();
  const required = min.upper + min.lower + min.numeric + min.special;
  if (required > length) throw inputs.error(`length ${length} is below the minimums it asks for (${required})`);
  const charset = `${upper ? upperChars : ""}${lower ? lowerChars : ""}${numeric ? numericChars : ""}${special ? specials : ""}`;
  if (charset === "") throw inputs.error(`upper, lower, numeric and special are all false: no character to draw from`);
  const chars = [
    ...draw(numericChars, min.numeric),
    ...draw(lowerChars, min.lower),
    ...draw(upperChars, min.upper),
    ...draw(specials, min.special),
  ];
  chars.push(...draw(charset, length - chars.length));
  for (let i = chars.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [chars[i], chars[j]] = [chars[j], chars[i]];
  }
  return { id: "none", state: { ...inputs.echo(), upper, lower, numeric, special, result: secretWrapper(chars.join("")) } };
}
