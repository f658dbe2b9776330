/**
 * EffectInput: copies of effect inputs as they were when a handler passed them (a handler may change an input object
 * in place afterwards), and the test that a later input equals such a copy. Pure code, per effect call.
 */

export const notPlain: unique symbol = Symbol("notPlain")

/** A primitive, or a shallow copy of a plain object or array of primitives; `notPlain` for anything else. */
export const copyOfPlain = (value: unknown): unknown => {
  if (!isObject(value)) return value
  if (!isPlainContainer(value)) return notPlain
  const copy: Record<string, unknown> = Array.isArray(value) ? [] as unknown as Record<string, unknown> : {}
  for (const k of Object.keys(value)) {
    const v = (value as Record<string, unknown>)[k]
    if (isObject(v)) return notPlain
    copy[k] = v
  }
  return copy
}

/** An input equal to a `copyOfPlain` copy: the same primitive, or a plain object or array holding the same primitives. */
export const equalsCopy = (copy: unknown, input: unknown): boolean => {
  if (!isObject(copy) || !isObject(input)) return Object.is(copy, input)
  if (!isPlainContainer(input) || Array.isArray(copy) !== Array.isArray(input)) return false
  const keys = Object.keys(copy)
  if (keys.length !== Object.keys(input).length) return false
  for (const k of keys) {
    if (!Object.hasOwn(input, k) || !Object.is((copy as Record<string, unknown>)[k], (input as Record<string, unknown>)[k])) return false
  }
  return true
}

const isObject = (value: unknown): value is object => (typeof value === "object" && value !== null) || typeof value === "function"

const isPlainContainer = (value: object): boolean => {
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null || Array.isArray(value)
}
