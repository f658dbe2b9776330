/**
 * Scalars: the GraphQL scalars the API adds — `BigInt` (a decimal string), `Int8` (a 64-bit integer as a JSON
 * number), `Address` and `Hash` (lowercase 0x hex), `Timestamp` (ISO 8601) and `JSON`. Input values parse to the
 * SQL text of a parameter, so filters never build SQL from user text.
 *
 * graphql-js expects scalar parsers to throw on bad input: these are its callbacks, not Effect code.
 */
import { GraphQLError, GraphQLScalarType, Kind, type ValueNode } from "graphql"

const fail = (message: string): never => {
  throw new GraphQLError(message, { extensions: { code: "BAD_USER_INPUT" } })
}

const integerText = /^-?(0|[1-9][0-9]{0,79})$/

const bigintInput = (value: unknown): string => {
  if (typeof value === "string" && integerText.test(value)) return value
  if (typeof value === "number" && Number.isSafeInteger(value)) return String(value)
  return fail(`BigInt must be an integer given as a decimal string, got ${describe(value)}`)
}

const int8Input = (value: unknown): string => {
  if (typeof value === "number" && Number.isSafeInteger(value)) return String(value)
  if (typeof value === "string" && integerText.test(value) && Number.isSafeInteger(Number(value))) return value
  return fail(`Int8 must be a safe integer, got ${describe(value)}`)
}

const hexInput = (name: string, bytes: number) => {
  const pattern = new RegExp(`^0x[0-9a-fA-F]{${bytes * 2}}$`)
  return (value: unknown): string =>
    typeof value === "string" && pattern.test(value)
      ? value.toLowerCase()
      : fail(`${name} must be 0x followed by ${bytes * 2} hex digits, got ${describe(value)}`)
}

const timestampInput = (value: unknown): string => {
  const date = typeof value === "string" ? new Date(value) : typeof value === "number" ? new Date(value) : undefined
  if (date === undefined || Number.isNaN(date.getTime())) return fail(`Timestamp must be an ISO 8601 string or epoch milliseconds, got ${describe(value)}`)
  return date.toISOString()
}

const literal = (ast: ValueNode): unknown =>
  ast.kind === Kind.STRING ? ast.value : ast.kind === Kind.INT ? Number(ast.value) : undefined

/** Int literals keep their digits (a BigInt literal may pass 2^53). */
const literalDigits = (ast: ValueNode): unknown =>
  ast.kind === Kind.STRING || ast.kind === Kind.INT ? ast.value : undefined

const describe = (value: unknown): string => {
  const text = typeof value === "string" ? JSON.stringify(value) : typeof value
  return text.length > 80 ? `${text.slice(0, 77)}...` : text
}

export const BigIntScalar = new GraphQLScalarType({
  name: "BigInt",
  description: "An integer of any size, as a decimal string (uint256 values included).",
  serialize: (value) => (typeof value === "bigint" || typeof value === "number" || typeof value === "string" ? String(value) : fail("BigInt cannot represent this value")),
  parseValue: bigintInput,
  parseLiteral: (ast) => bigintInput(literalDigits(ast))
})

export const Int8Scalar = new GraphQLScalarType({
  name: "Int8",
  description: "A 64-bit integer within JavaScript's safe range, as a JSON number.",
  serialize: (value) => {
    const n = typeof value === "bigint" ? Number(value) : typeof value === "string" ? Number(value) : value
    return typeof n === "number" && Number.isFinite(n) ? n : fail("Int8 cannot represent this value")
  },
  parseValue: int8Input,
  parseLiteral: (ast) => int8Input(literal(ast))
})

export const AddressScalar = new GraphQLScalarType({
  name: "Address",
  description: "A 20-byte address: 0x and 40 lowercase hex digits (input is lowercased).",
  serialize: (value) => (typeof value === "string" ? value : fail("Address cannot represent this value")),
  parseValue: hexInput("Address", 20),
  parseLiteral: (ast) => hexInput("Address", 20)(ast.kind === Kind.STRING ? ast.value : undefined)
})

export const HashScalar = new GraphQLScalarType({
  name: "Hash",
  description: "A 32-byte hash: 0x and 64 lowercase hex digits (input is lowercased).",
  serialize: (value) => (typeof value === "string" ? value : fail("Hash cannot represent this value")),
  parseValue: hexInput("Hash", 32),
  parseLiteral: (ast) => hexInput("Hash", 32)(ast.kind === Kind.STRING ? ast.value : undefined)
})

export const TimestampScalar = new GraphQLScalarType({
  name: "Timestamp",
  description: "A point in time as an ISO 8601 string (input: ISO 8601 or epoch milliseconds).",
  serialize: (value) =>
    value instanceof Date ? value.toISOString() : typeof value === "string" ? new Date(value).toISOString() : fail("Timestamp cannot represent this value"),
  parseValue: timestampInput,
  parseLiteral: (ast) => timestampInput(literal(ast))
})

export const JsonScalar = new GraphQLScalarType({
  name: "JSON",
  description: "Any JSON value, as stored.",
  serialize: (value) => value,
  parseValue: (value) => value,
  parseLiteral: () => fail("JSON values cannot be used as arguments")
})

/** Every scalar this module adds, by name. */
export const all: ReadonlyArray<GraphQLScalarType> = [BigIntScalar, Int8Scalar, AddressScalar, HashScalar, TimestampScalar, JsonScalar]
