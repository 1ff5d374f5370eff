/** An error about how pgstack was called: printed without a stack trace, exit code 2. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

/** An error whose message is complete for a person (bad connection string, missing program): no stack trace. */
export class UserFacingError extends Error {
  override readonly name = "UserFacingError";
}
