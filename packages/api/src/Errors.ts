/**
 * The typed errors of the query API, in one module.
 */
import { Schema } from "effect"

/** The indexer's entities cannot be served as a GraphQL schema (a name collides with a generated one, …). */
export class ApiDefinitionError extends Schema.TaggedError<ApiDefinitionError>()("ApiDefinitionError", {
  message: Schema.String
}) {}

/**
 * A read failed. `public` is what a client may see (it never quotes SQL or a stack); `cause` keeps the detail for logs.
 * `code` goes to the GraphQL error's `extensions.code`.
 */
export class ReadError extends Schema.TaggedError<ReadError>()("ReadError", {
  code: Schema.Literals(["BAD_USER_INPUT", "BLOCK_OUT_OF_RANGE", "TIMEOUT", "INTERNAL"]),
  public: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {
  override get message(): string {
    return this.public
  }

  static badInput(message: string): ReadError {
    return new ReadError({ code: "BAD_USER_INPUT", public: message })
  }

  static internal(cause: unknown): ReadError {
    return new ReadError({ code: "INTERNAL", public: "internal error while reading the database", cause })
  }
}
