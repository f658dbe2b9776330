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
    const word = wordReader(input.type)
    if (word === undefined) return { key, read: (topics) => decode(topics[at]!) }
    return {
      key,
      read: (topics) => {
        const topic = topics[at]!
        const value = topic.length === 66 && hexText.test(topic) ? word(topic.slice(2)) : fallback
        return value === fallback ? normalise(input, decode(topic)) : value
      }
    }
  })
  // Data of one-word types only (uint, int, address, bool, bytesN: most events) is read word by word.
  const words = dataInputs.map((input) => wordReader(input.type))
  const byWords = words.every((w) => w !== undefined) ? (words as ReadonlyArray<WordReader>) : undefined
  const failure = (reason: string, cause?: unknown) =>
    Result.fail(new EventParamsError({ contract, event: event.name, reason, cause }))
  return {
    contract,
    event,
    selector: toEventSelector(event),
    decode: (topics, data) => {
      if (topics.length < topicCount) return failure(`expected ${topicCount} topics, the log has ${topics.length}`)
      try {
        const values = dataInputs.length === 0 ? noValues :
          (byWords === undefined ? undefined : readWords(byWords, data)) ?? decodeAbiParameters(dataInputs, data)
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

const normalise = (input: AbiParameter, value: unknown): unknown => (input.type === "address" ? lowercase(value) : value)

/** Reads one 32-byte ABI word (64 hex digits, no 0x) as viem decodes it, or `fallback` where viem would throw. */
type WordReader = (word: string) => unknown

/** What a word reader gives where viem would throw: decoding goes through viem then, for its error. */
const fallback: unique symbol = Symbol("fallback")

const hexText = /^0x[0-9a-fA-F]*$/

const two256 = 1n << 256n
const maxInt256 = (1n << 255n) - 1n
const zeroWord = "0".repeat(64)
const oneWord = `${"0".repeat(63)}1`

/**
 * The reader of a one-word elementary type, undefined for any other (arrays, tuples, bytes, string). Values as
 * viem gives them: int/uint of up to 48 bits as numbers (a value past the safe integers is viem's error), wider
 * ones as bigints, an int word in two's complement over 256 bits, a bool word 0 or 1 only, an address as its
 * last 20 bytes (lowercase here), bytesN as its first N bytes.
 */
const wordReader = (type: string): WordReader | undefined => {
  if (type === "address") return (word) => `0x${word.slice(24).toLowerCase()}`
  if (type === "bool") return (word) => (word === zeroWord ? false : word === oneWord ? true : fallback)
  const bytes = /^bytes([1-9]|[12][0-9]|3[0-2])$/.exec(type)
  if (bytes !== null) {
    const digits = 2 * Number(bytes[1])
    return (word) => `0x${word.slice(0, digits).toLowerCase()}`
  }
  const number = /^(u?)int(\d*)$/.exec(type)
  if (number === null) return undefined
  const bits = number[2] === "" ? 256 : Number(number[2])
  if (bits < 8 || bits > 256 || bits % 8 !== 0) return undefined
  const signed = number[1] === ""
  const asBigInt = (word: string): bigint => {
    const value = BigInt(`0x${word}`)
    return signed && value > maxInt256 ? value - two256 : value
  }
  if (bits > 48) return asBigInt
  return (word) => {
    const value = Number(asBigInt(word))
    return Number.isSafeInteger(value) ? value : fallback
  }
}

/** The data's words read in order, or undefined when the data is not whole words of hex or a word needs viem. */
const readWords = (readers: ReadonlyArray<WordReader>, data: Hex): ReadonlyArray<unknown> | undefined => {
  // viem pads an odd-length hex at the front and errs on short data: those go its way.
  if (data.length < 2 + 64 * readers.length || data.length % 2 !== 0 || !hexText.test(data)) return undefined
  const values = new Array<unknown>(readers.length)
  for (let i = 0; i < readers.length; i++) {
    const value = readers[i]!(data.slice(2 + 64 * i, 66 + 64 * i))
    if (value === fallback) return undefined
    values[i] = value
  }
  return values
}

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
