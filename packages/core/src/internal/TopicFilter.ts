/**
 * TopicFilter: a `where` on an event's indexed arguments, compiled to the `topics` of an `eth_getLogs` filter. One
 * object is an AND over its arguments, a list value an OR over values, a list of objects an OR of objects.
 */
import { Result } from "effect"
import type { AbiEvent, AbiParameter, Hex } from "viem"
// The subpath: the package index loads viem's clients and chains too.
import { encodeAbiParameters, keccak256, toEventSelector, toHex } from "viem/utils"
import type { Topics } from "../Source.js"
import { describeCause, keyOf } from "./EventDecoder.js"

export type Where = Readonly<Record<string, unknown>>

/**
 * The topic filters of `where` for each overload of an event (one ABI item each): a problem names the argument.
 * Values are lowercase, as logs are compared in matchesTopics.
 */
/** What is wrong with a filter: `path` is the place inside `where` (`.from`, `[1].to`), empty for the whole. */
export interface Problem {
  readonly path: string
  readonly message: string
}

export const compile = (events: ReadonlyArray<AbiEvent>, where: Where | ReadonlyArray<Where>): Result.Result<ReadonlyArray<Topics>, Problem> => {
  const problem = (path: string, message: string) => Result.fail({ path, message })
  const alternatives: ReadonlyArray<unknown> = Array.isArray(where) ? where : [where]
  if (alternatives.length === 0) return problem("", "is an empty list: it would match nothing")
  const out: Array<Topics> = []
  for (const event of events) {
    for (const [i, alternative] of alternatives.entries()) {
      const at = Array.isArray(where) ? `[${i}]` : ""
      if (typeof alternative !== "object" || alternative === null || Array.isArray(alternative)) {
        return problem(at, "must be an object of indexed arguments")
      }
      const topics: Array<ReadonlyArray<Hex> | null> = [[toEventSelector(event)]]
      const indexed = event.inputs.flatMap((input, index) => (input.indexed === true ? [{ input, key: keyOf(input, index) }] : []))
      for (const key of Object.keys(alternative)) {
        const input = event.inputs.find((p, index) => keyOf(p, index) === key)
        if (input === undefined) return problem(`${at}.${key}`, `"${key}" is not an argument of ${event.name}`)
        if (input.indexed !== true) return problem(`${at}.${key}`, `"${key}" is not indexed: only indexed arguments can be filtered on`)
      }
      for (const { input, key } of indexed) {
        const given = (alternative as Where)[key]
        if (given === undefined) {
          topics.push(null)
          continue
        }
        const values: ReadonlyArray<unknown> = Array.isArray(given) ? given : [given]
        if (values.length === 0) return problem(`${at}.${key}`, "is an empty list: it would match nothing")
        const encoded: Array<Hex> = []
        for (const value of values) {
          const topic = encodeTopic(input, value)
          if (Result.isFailure(topic)) return problem(`${at}.${key}`, topic.failure)
          encoded.push(topic.success)
        }
        topics.push(encoded)
      }
      while (topics.length > 1 && topics[topics.length - 1] === null) topics.pop()
      out.push(topics)
    }
  }
  return Result.succeed(out)
}

/** One value as its topic: an address or a fixed-size value padded to 32 bytes, a string or bytes as its hash. */
const encodeTopic = (input: AbiParameter, value: unknown): Result.Result<Hex, string> => {
  if (input.type === "tuple" || input.type.endsWith("]")) return Result.fail(`an indexed ${input.type} is only a hash on chain: it cannot be filtered on`)
  try {
    if (input.type === "string") {
      if (typeof value !== "string") return Result.fail(`${describe(value)} is not a string`)
      return Result.succeed(keccak256(toHex(value)))
    }
    if (input.type === "bytes") {
      if (typeof value !== "string" || !/^0x([0-9a-fA-F]{2})*$/.test(value)) return Result.fail(`${describe(value)} is not 0x bytes`)
      return Result.succeed(keccak256(value as Hex))
    }
    if (input.type === "address" && (typeof value !== "string" || !/^0x[0-9a-fA-F]{40}$/.test(value))) {
      return Result.fail(`${describe(value)} is not a 0x address of 20 bytes`)
    }
    const v = input.type === "address" ? (value as string).toLowerCase() : value
    return Result.succeed(encodeAbiParameters([input], [v]).toLowerCase() as Hex)
  } catch (cause) {
    return Result.fail(`${describe(value)} is not a valid ${input.type}: ${describeCause(cause)}`)
  }
}

const describe = (value: unknown): string => (typeof value === "bigint" ? `${value}n` : typeof value === "string" ? JSON.stringify(value) : String(value))
