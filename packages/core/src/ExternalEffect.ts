/**
 * ExternalEffect: a user-declared external call (RPC, HTTP) whose outputs the EffectCache memoises per input.
 * Named apart from Effect's own `Effect`.
 */
import { type Effect, type Result, Schema } from "effect"
import * as EffectInput from "./internal/EffectInput.js"
import type { RateLimit } from "./RateLimiter.js"

/** A schema usable for inputs and outputs: no services needed to decode or encode. */
export type Codec<A> = Schema.ConstraintCodec<A, unknown, never, never>

export interface ExternalEffect<Name extends string = string, I = unknown, O = unknown, E = unknown> {
  readonly name: Name
  readonly input: Codec<I>
  readonly output: Codec<O>
  /** Persist outputs (default true); `false` keeps them in memory only. */
  readonly cache: boolean
  /** Outputs depend on chain state: dropped after a reorg's fork point (memory and database). */
  readonly reorgSensitive: boolean
  readonly rateLimit: RateLimit | undefined
  // Method syntax on purpose: it lets every definition stand in for `Any` (parameters are bivariant).
  run(input: I): Effect.Effect<O, E>
  /** Runs many inputs in one go (one request for a batch); the preload pass uses it when present. */
  runMany?(inputs: ReadonlyArray<I>): Effect.Effect<ReadonlyArray<Result.Result<O, E>>, E>
  /** Stable key of an input: its JSON encoding with object keys sorted. */
  inputKey(input: I): string
  /** The input as it is now, apart from the caller's object (which the caller may change later). */
  copyInput(input: I): I
  /** The output as JSON, for storage. */
  encodeOutput(output: O): Schema.Json
  /** A stored output decoded with the current schema; failure means the stored row is stale. */
  decodeOutput(json: unknown): Effect.Effect<O, Schema.SchemaError>
}

export interface Options<Name extends string, I, O, E> {
  readonly name: Name
  readonly input: Codec<I>
  readonly output: Codec<O>
  readonly cache?: boolean
  readonly reorgSensitive?: boolean
  readonly rateLimit?: RateLimit
  readonly run: (input: I) => Effect.Effect<O, E>
  /** Resolves many inputs at once, results in order (e.g. one batched request); `run` still serves single calls. */
  readonly runMany?: (inputs: ReadonlyArray<I>) => Effect.Effect<ReadonlyArray<Result.Result<O, E>>, E>
}

export const make = <const Name extends string, I, O, E = never>(options: Options<Name, I, O, E>): ExternalEffect<Name, I, O, E> => {
  const inputJson = Schema.toCodecJson(options.input)
  const outputJson = Schema.toCodecJson(options.output)
  const encodeInput = Schema.encodeSync(inputJson)
  const encodeOutput = Schema.encodeSync(outputJson)
  const decodeOutput = Schema.decodeUnknownEffect(outputJson)
  const decodeInput = Schema.decodeSync(inputJson)
  return {
    name: options.name,
    input: options.input,
    output: options.output,
    cache: options.cache ?? true,
    reorgSensitive: options.reorgSensitive ?? false,
    rateLimit: options.rateLimit,
    run: options.run,
    ...(options.runMany === undefined ? {} : { runMany: options.runMany }),
    // Plain data keys straight from the value (the hot path); anything else through the schema's JSON encoding.
    inputKey: (input) => plainKey(input) ?? stableStringify(encodeInput(input)),
    // Plain data by a shallow copy; anything else (nested, Dates, classes) through its schema's encoding and back.
    copyInput: (input) => {
      const copy = EffectInput.copyOfPlain(input)
      if (copy !== EffectInput.notPlain) return copy as I
      try {
        return decodeInput(encodeInput(input))
      } catch {
        // Not encodable: the call fails on its key anyway.
        return input
      }
    },
    encodeOutput: (output) => encodeOutput(output) as Schema.Json,
    decodeOutput: (json) => decodeOutput(json) as Effect.Effect<O, Schema.SchemaError>
  }
}

/** Why an input has no key: its schema cannot encode it. */
export class UnencodableInput {
  constructor(readonly cause: unknown) {}
}

/** The input's key, or why it has none. Plain code, not an Effect: it runs for every call. */
export const keyOf = <I>(effect: ExternalEffect<string, I, unknown, unknown>, input: I): string | UnencodableInput => {
  try {
    return effect.inputKey(input)
  } catch (cause) {
    return new UnencodableInput(cause)
  }
}

/** Whether the effect's output schema can encode `output` for storage. Plain code: run per output of a batch. */
export const encodes = (effect: Any, output: unknown): boolean => {
  try {
    effect.encodeOutput(output)
    return true
  } catch {
    return false
  }
}

/** Any effect definition, for code that handles them generically. */
export type Any = ExternalEffect<string, unknown, unknown, unknown>

/**
 * The key of plain data (strings, finite numbers, booleans, null, bigints as decimal strings, arrays and plain
 * objects of those), equal to the JSON encoding's stable form; undefined for anything else (Dates, Maps, classes…),
 * whose key then comes from the schema's encoding.
 */
const plainKey = (value: unknown): string | undefined => {
  switch (typeof value) {
    case "string":
      return quote(value)
    case "number":
      return Number.isFinite(value) ? String(value) : undefined
    case "boolean":
      return value ? "true" : "false"
    case "bigint":
      return `"${value}"`
    case "object": {
      if (value === null) return "null"
      if (Array.isArray(value)) {
        const parts: Array<string> = []
        for (const item of value) {
          const k = plainKey(item)
          if (k === undefined) return undefined
          parts.push(k)
        }
        return `[${parts.join(",")}]`
      }
      if (Object.getPrototypeOf(value) !== Object.prototype) return undefined
      const record = value as Record<string, unknown>
      const keys = Object.keys(record)
      // Inputs are mostly literals written with their keys in order: sort only when they are not.
      for (let i = 1; i < keys.length; i++) {
        if (keys[i - 1]! > keys[i]!) {
          keys.sort()
          break
        }
      }
      let out = "{"
      for (const key of keys) {
        const v = record[key]
        if (v === undefined) continue
        const k = plainKey(v)
        if (k === undefined) return undefined
        out += (out.length > 1 ? "," : "") + quote(key) + ":" + k
      }
      return out + "}"
    }
    default:
      return undefined
  }
}

/** What JSON escapes in a string: control characters, quote, backslash, surrogates. */
const needsEscape = /[\u0000-\u001f"\\\ud800-\udfff]/

/** A string's JSON text: quoted as it is when nothing in it needs escaping (addresses, hashes, names). */
const quote = (s: string): string => (needsEscape.test(s) ? JSON.stringify(s) : `"${s}"`)

/** JSON text with object keys sorted, so equal inputs give equal keys. */
export const stableStringify = (value: unknown): string => {
  if (value === null || typeof value !== "object") return JSON.stringify(value) ?? "null"
  if (Array.isArray(value)) return `[${value.map(stableStringify).join(",")}]`
  const record = value as Record<string, unknown>
  const keys = Object.keys(record).filter((k) => record[k] !== undefined).sort()
  return `{${keys.map((k) => `${JSON.stringify(k)}:${stableStringify(record[k])}`).join(",")}}`
}
