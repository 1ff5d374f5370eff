/**
 * A secret from the environment, or from the file `<NAME>_FILE` names (the official images' convention): the
 * container targets hand connection URLs over as files, so that `docker inspect` never shows them
 * (components/docker/layout.ts secretsDirectory). Setting both is refused, as the postgres image's file_env does.
 */
import { readFileSync } from "node:fs";
import { UserFacingError } from "./errors";

/** The value of `name`, or the contents of the file `${name}_FILE` names (one trailing newline dropped); undefined when neither is set. */
export function secretFromEnv(name: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const fileVariable = `${name}_FILE`;
  const direct = env[name];
  const file = env[fileVariable];
  if (direct !== undefined && direct !== "" && file !== undefined && file !== "") {
    throw new UserFacingError(`both ${name} and ${fileVariable} are set; set one of them`);
  }
  if (file === undefined || file === "") return direct;
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new UserFacingError(`${fileVariable} names ${file}, which cannot be read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return text.replace(/\r?\n$/, "");
}
