/**
 * EventDecoder: the one way a log becomes the `params` a handler sees. Built once per contract event, run per log:
 * one object keyed by input name, or by position in `inputs` ("3") for an unnamed input, with every address
 * lowercased wherever it is nested. RpcSource and the test kit both decode through it.
 */
import { Result } from "effect"
import type { AbiEvent, AbiParameter, Hex } from "viem"
// The subpath: the package index loads viem's clients and chains too.
import { decodeAbiParameters, toEventSelector } from "viem/utils"
import { EventParamsError } from "../Errors.js"

export interface EventDecoder {
  readonly contract: string
  readonly event: AbiEvent
  /** `topics[0]` of the event's logs (an anonymous event's logs do not carry it). */
  readonly selector: Hex
  readonly decode: (topics: ReadonlyArray<Hex>, data: Hex) => Result.Result<Readonly<Record<string, unknown>>, EventParamsError>
}

/** The key of input `index` in params: its name, or its position for an unnamed input. */
export const keyOf = (input: AbiParameter, index: number): string =>
  input.name === undefined || input.name === "" ? String(index) : input.name

/** A thrown viem error in a line: its short message, without the docs and version footer. */
export const describeCause = (cause: unknown): string => {
  if (!(cause instanceof Error)) return String(cause)
  const short: unknown = (cause as { readonly shortMessage?: unknown }).shortMessage
  return typeof short === "string" ? short : cause.message
}

export const make = (contract: string, event: AbiEvent): EventDecoder => {
  const dataInputs = event.inputs.filter((input) => input.indexed !== true)
  const firstTopic = event.anonymous === true ? 0 : 1
  const topicCount = firstTopic + event.inputs.length - dataInputs.length
  let nextTopic = firstTopic
  let nextValue = 0
  // One reader per input, in ABI order: from its topic, or from the decoded data at its position there.
  const fields = event.inputs.map((input, index): Field => {
    const key = keyOf(input, index)
    if (input.indexed !== true) {
      const at = nextValue++
      const normalise = normaliser(input) ?? identity
      return { key, read: (_, values) => normalise(values[at]) }
    }
    const at = nextTopic++
    if (isHashedTopic(input)) return { key, read: (topics) => topics[at] }
    const params = [input] as const
    const decode = (t: Hex) => decodeAbiParameters(params, t)[0]
    // An address topic is its last 20 bytes: sliced, it skips viem's checksum (a keccak per address).
    if (input.type === "address") return { key, read: (topics) => readAddressTopic(topics[at]!, decode) }
    return { key, read: (topics) => decode(topics[at]!) }
  })
  const failure = (reason: string, cause?: unknown) =>
    Result.fail(new EventParamsError({ contract, event: event.name, reason, cause }))
  return {
    contract,
    event,
    selector: toEventSelector(event),
    decode: (topics, data) => {
      if (topics.length < topicCount) return failure(`expected ${topicCount} topics, the log has ${topics.length}`)
      try {
        const values = dataInputs.length === 0 ? noValues : decodeAbiParameters(dataInputs, data)
        const out: Record<string, unknown> = {}
        for (let i = 0; i < fields.length; i++) out[fields[i]!.key] = fields[i]!.read(topics, values)
        return Result.succeed(out)
      } catch (cause) {
        return failure(describeCause(cause), cause)
      }
    }
  }
}

interface Field {
  readonly key: string
  readonly read: (topics: ReadonlyArray<Hex>, values: ReadonlyArray<unknown>) => unknown
}

type Normalise = (value: unknown) => unknown

const noValues: ReadonlyArray<unknown> = []

const identity: Normalise = (value) => value

const lowercase: Normalise = (value) => (typeof value === "string" ? value.toLowerCase() : value)

/** Whether an indexed input's topic is the hash of its value rather than its value (viem's rule). */
const isHashedTopic = (input: AbiParameter): boolean =>
  input.type === "string" || input.type === "bytes" || input.type === "tuple" || input.type.endsWith("]")

const readAddressTopic = (topic: Hex, decode: (topic: Hex) => unknown): unknown =>
  topic.length === 66 ? `0x${topic.slice(26).toLowerCase()}` : lowercase(decode(topic))

/**
 * Lowercases the addresses inside a decoded value of `param`'s type, in place (viem's result is fresh), or
 * undefined when the type holds no address. Type-directed: bytes20 and strings are never touched.
 */
const normaliser = (param: AbiParameter): Normalise | undefined => {
  const array = /^(.*)\[\d*\]$/.exec(param.type)
  if (array !== null) {
    const element = normaliser({ ...param, type: array[1]! } as AbiParameter)
    if (element === undefined) return undefined
    return (value) => {
      if (Array.isArray(value)) for (let i = 0; i < value.length; i++) value[i] = element(value[i])
      return value
    }
  }
  if ("components" in param) {
    // viem decodes a tuple to an object by component name, or to an array when a component is unnamed.
    const byName = param.components.length > 0 && param.components.every((c) => c.name !== undefined && c.name !== "")
    const keys: Array<string | number> = []
    const inner: Array<Normalise> = []
    param.components.forEach((component, i) => {
      const normalise = normaliser(component)
      if (normalise === undefined) return
      keys.push(byName ? component.name! : i)
      inner.push(normalise)
    })
    if (keys.length === 0) return undefined
    return (value) => {
      if (typeof value !== "object" || value === null) return value
      const slots = value as Record<string | number, unknown>
      for (let i = 0; i < keys.length; i++) slots[keys[i]!] = inner[i]!(slots[keys[i]!])
      return value
    }
  }
  return param.type === "address" ? lowercase : undefined
}
