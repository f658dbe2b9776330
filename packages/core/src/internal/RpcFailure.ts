/**
 * RpcFailure: what a failed JSON-RPC reply means, decided once per reply (HTTP status, body, JSON-RPC error object,
 * network error) into a small tagged union; RpcClient gives each class one policy. Pure functions, no services.
 */

/** The provider asks us to slow down: wait (`waitMs` when it says how long) and send the same request again. */
export interface RateLimited {
  readonly _tag: "RateLimited"
  readonly message: string
  readonly waitMs: number | undefined
}

/**
 * Ask for less: fewer blocks per eth_getLogs (`suggested` when the provider names a range that works) or fewer calls
 * per batch; `limit` is the provider's own when it names one (results per eth_getLogs, calls per batch).
 * `timedOut`: the request took too long rather than being refused, so at the smallest request it is retried instead.
 */
export interface TooLarge {
  readonly _tag: "TooLarge"
  readonly message: string
  readonly suggested: { readonly from: number; readonly to: number } | undefined
  readonly limit: number | undefined
  readonly timedOut: boolean
}

/** Worth retrying as is: 5xx, HTML pages, resets, timeouts, malformed JSON. */
export interface Transient {
  readonly _tag: "Transient"
  readonly message: string
}

/** Retrying will not help: authentication, unknown method, invalid params. */
export interface Permanent {
  readonly _tag: "Permanent"
  readonly message: string
}

/** An answer without the item asked for (null, a short batch, the wrong block, a block the node does not know yet). */
export interface MissingItem {
  readonly _tag: "MissingItem"
  readonly message: string
}

/**
 * A call that ran and reverted (eth_call, eth_estimateGas): the chain's answer, not the wire's failure. `data` is the
 * revert data ("0x" when the node gives none). A caller that takes reverts as results gets it; for others it is final.
 */
export interface Reverted {
  readonly _tag: "Reverted"
  readonly message: string
  readonly data: `0x${string}`
}

export type Failure = RateLimited | TooLarge | Transient | Permanent | MissingItem | Reverted

export const rateLimited = (message: string, waitMs?: number): RateLimited => ({ _tag: "RateLimited", message, waitMs })
export const tooLarge = (message: string, options: Partial<Omit<TooLarge, "_tag" | "message">> = {}): TooLarge => ({
  _tag: "TooLarge",
  message,
  suggested: options.suggested,
  limit: options.limit,
  timedOut: options.timedOut ?? false
})
export const transient = (message: string): Transient => ({ _tag: "Transient", message })
export const permanent = (message: string): Permanent => ({ _tag: "Permanent", message })
export const missingItem = (message: string): MissingItem => ({ _tag: "MissingItem", message })
export const reverted = (message: string, data: `0x${string}`): Reverted => ({ _tag: "Reverted", message, data })

/** A JSON-RPC error object as providers send it. */
export interface RpcErrorObject {
  readonly code?: unknown
  readonly message?: unknown
  readonly data?: unknown
}

const rateText = /rate limit|rate-limit|too many requests|request rate|exceeded (its|the|your)? ?(compute units|capacity|quota|throughput)|compute units per second|capacity|throttl|\brps\b|per second|backoff_seconds|retry after/i
const tooLargeText =
  /more than \d+ (results|logs)|too many (results|logs|blocks)|response size|block range|range (is )?too (large|wide|big)|exceeds? (the )?(max|maximum|limit)|limit exceeded|query timeout|returned more than|result window|logs? (are )?limited|string longer than|invalid string length|ERR_STRING_TOO_LONG|body too large|response too large|batch (size )?(too large|limit|exceeded)|too (large|big)/i
const timeoutText = /time(d)? ?out|deadline exceeded|aborted/i
const missingText = /header not found|unknown block|block not found|missing trie node|not (yet )?(available|found|synced)|no such block|unknown hash|cannot find block/i
const permanentText =
  /unauthori[sz]ed|forbidden|invalid api key|api key|invalid project id|project id .*(not|invalid)|not whitelisted|not allowed|method not (found|supported|available)|method .* does not exist|unsupported method|invalid argument|invalid params|cannot unmarshal|insufficient funds/i

const isHexData = (v: unknown): v is `0x${string}` => typeof v === "string" && /^0x([0-9a-fA-F]{2})*$/.test(v)

/** The revert data of a revert's error object: `data` itself, or nested as `data.data` (some gateways); else none ("0x"). */
const revertData = (data: unknown): `0x${string}` => {
  if (isHexData(data)) return data.toLowerCase() as `0x${string}`
  const inner = typeof data === "object" && data !== null ? (data as { readonly data?: unknown }).data : undefined
  return isHexData(inner) ? inner.toLowerCase() as `0x${string}` : "0x"
}

/** The block range a provider says would work ("this block range should work: [0x…, 0x…]", Infura's `data.from/to`). */
const suggestedRange = (message: string, data: unknown): { readonly from: number; readonly to: number } | undefined => {
  const match = /\[\s*(0x[0-9a-fA-F]+|\d+)\s*,\s*(0x[0-9a-fA-F]+|\d+)\s*\]/.exec(message)
  if (match !== null) return { from: Number(match[1]), to: Number(match[2]) }
  if (typeof data === "object" && data !== null) {
    const { from, to } = data as { readonly from?: unknown; readonly to?: unknown }
    if ((typeof from === "string" || typeof from === "number") && (typeof to === "string" || typeof to === "number")) {
      const range = { from: Number(from), to: Number(to) }
      if (Number.isSafeInteger(range.from) && Number.isSafeInteger(range.to)) return range
    }
  }
  return undefined
}

/** The provider's result limit when it names it ("more than 10000 results", "a cap of 10K logs"). */
const resultCapOf = (message: string): number | undefined => {
  const match = /more than (\d+) (results|logs)|cap of (\d+)(k?) logs/i.exec(message)
  if (match === null) return undefined
  if (match[1] !== undefined) return Number(match[1])
  return Number(match[3]) * (match[4]?.toLowerCase() === "k" ? 1000 : 1)
}

/** The size a provider says it takes when refusing `asked` calls in a batch ("… exceeds the limit of 10"): a number below `asked`. */
export const batchLimitOf = (message: string, asked: number): number | undefined => {
  let limit: number | undefined
  for (const match of message.matchAll(/\b(\d+)\b/g)) {
    const n = Number(match[1])
    if (n >= 1 && n < asked && (limit === undefined || n > limit)) limit = n
  }
  return limit
}

/** Seconds to wait as a provider writes it in a body (`backoff_seconds`, `retryAfter`, "retry after 2s"). */
const bodyWaitMs = (message: string, data: unknown): number | undefined => {
  if (typeof data === "object" && data !== null) {
    const d = data as { readonly backoff_seconds?: unknown; readonly retryAfter?: unknown; readonly retry_after?: unknown }
    for (const seconds of [d.backoff_seconds, d.retryAfter, d.retry_after]) {
      const n = typeof seconds === "string" ? Number(seconds) : seconds
      if (typeof n === "number" && Number.isFinite(n) && n >= 0) return n * 1000
    }
  }
  const match = /retry (?:after|in) (\d+(?:\.\d+)?) ?(ms|s|sec|seconds?)?\b/i.exec(message)
  if (match === null) return undefined
  return Number(match[1]) * (match[2]?.toLowerCase() === "ms" ? 1 : 1000)
}

/** A `Retry-After` header: seconds, or an HTTP date. */
export const retryAfterMs = (header: string | null, now: number): number | undefined => {
  if (header === null || header.trim() === "") return undefined
  const seconds = Number(header)
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000)
  const date = Date.parse(header)
  return Number.isNaN(date) ? undefined : Math.max(0, date - now)
}

/** One JSON-RPC error object of a reply to `method`. */
export const classifyError = (error: RpcErrorObject, method: string): Failure => {
  const code = typeof error.code === "number" ? error.code : Number.NaN
  const text = typeof error.message === "string" ? error.message : JSON.stringify(error.message ?? "error")
  const dataText = typeof error.data === "string" ? ` ${error.data}` : ""
  const message = `${Number.isNaN(code) ? "" : `${code} `}${text}${dataText}`.slice(0, 500)
  const full = `${text}${dataText}`
  // A revert first: its reason is the contract's text ("amount exceeds limit"), not the provider's (code 3: EIP-1474 with data).
  if (code === 3 || /execution reverted|^reverted\b|processing transaction: revert\b/i.test(text)) return reverted(message, revertData(error.data))
  // A rate limit next: providers share codes (-32005, 429) between "slow down" and "too many results".
  if ((code === 429 || rateText.test(full)) && !/results|logs|block range|response size/i.test(full)) {
    return rateLimited(message, bodyWaitMs(full, error.data))
  }
  if (tooLargeText.test(full) || (code === -32005 && method === "eth_getLogs")) {
    return tooLarge(message, { suggested: suggestedRange(full, error.data), limit: resultCapOf(full) })
  }
  if (timeoutText.test(full)) return method === "eth_getLogs" ? tooLarge(message, { timedOut: true }) : transient(message)
  if (code === -32601 || code === -32004 || code === -32006) return permanent(message)
  if (missingText.test(full)) return missingItem(message)
  if (code === -32602 || code === 3 || permanentText.test(full)) return permanent(message)
  // Unknown codes (-32000, -32603 "internal error", …) are treated as passing: the outage budget bounds them.
  return transient(message)
}

/** A non-2xx HTTP reply; `body` is its text (a JSON-RPC error object inside is used when there is one). */
export const classifyHttp = (status: number, body: string, retryAfter: number | undefined, method: string): Failure => {
  const snippet = oneLine(body)
  const message = `HTTP ${status}${snippet.length > 0 ? ` ${snippet}` : ""}`
  const error = errorObjectOf(body)
  if (status === 429) return rateLimited(message, retryAfter ?? (error === undefined ? undefined : bodyWaitMs(String(error.message ?? ""), error.data)))
  if (status === 413) return tooLarge(message)
  if (status === 401 || status === 403) {
    // Some gateways answer a rate limit with 403; their body says so.
    return rateText.test(body) ? rateLimited(message, retryAfter) : permanent(message)
  }
  if (status === 408 || status === 504) return method === "eth_getLogs" ? tooLarge(message, { timedOut: true }) : transient(message)
  if (status >= 500) return rateText.test(body) && !/<html/i.test(body) ? rateLimited(message, retryAfter) : transient(message)
  if (error !== undefined) {
    const failure = classifyError(error, method)
    return { ...failure, message: `HTTP ${status} ${failure.message}` }
  }
  if (tooLargeText.test(body)) return tooLarge(message)
  if (status === 404 || status === 405 || status === 400) return permanent(message)
  return transient(message)
}

/** A request that got no HTTP reply: a reset, a refused connection, an abort on our timeout. */
export const classifyNetwork = (cause: unknown, method: string, timedOut: boolean): Failure => {
  const message = describeCause(cause)
  if (timedOut) return method === "eth_getLogs" ? tooLarge("request timed out", { timedOut: true }) : transient("request timed out")
  if (/ENOTFOUND|EAI_AGAIN|getaddrinfo/i.test(message)) return transient(`cannot resolve host (${message})`)
  return transient(message)
}

/** A 2xx reply whose body is not the JSON it should be. */
export const classifyBody = (text: string, method: string, cause: unknown): Failure => {
  const reason = describeCause(cause)
  if (/string longer than|invalid string length|ERR_STRING_TOO_LONG/i.test(reason)) return tooLarge(`reply too large to parse (${reason})`)
  if (/^\s*</.test(text)) return transient(`HTML instead of JSON: ${oneLine(text)}`)
  return transient(`malformed JSON reply to ${method}: ${oneLine(text) || "(empty body)"}`)
}

/** The error object of a JSON body, if it is one. */
const errorObjectOf = (body: string): RpcErrorObject | undefined => {
  if (!/^\s*[[{]/.test(body)) return undefined
  try {
    const parsed: unknown = JSON.parse(body)
    const one = Array.isArray(parsed) ? parsed[0] : parsed
    const error = typeof one === "object" && one !== null ? (one as { readonly error?: unknown }).error : undefined
    return typeof error === "object" && error !== null ? error : undefined
  } catch {
    return undefined
  }
}

/** A body in one short line: an HTML page by its title, whitespace collapsed. */
const oneLine = (text: string): string => {
  const title = /<title>([^<]*)<\/title>/i.exec(text)?.[1]
  const line = title === undefined ? text.replace(/<[^>]*>/g, " ") : `(HTML page "${title}")`
  return line.replace(/\s+/g, " ").trim().slice(0, 200)
}

/** An error in a line, with the system error code under a fetch failure (ECONNREFUSED, ECONNRESET). */
const describeCause = (cause: unknown): string => {
  if (cause instanceof Error) {
    const inner = (cause as { readonly cause?: unknown }).cause
    const code = typeof inner === "object" && inner !== null ? (inner as { readonly code?: unknown }).code : undefined
    return `${cause.name}: ${cause.message}${typeof code === "string" ? ` (${code})` : ""}`
  }
  return String(cause)
}
