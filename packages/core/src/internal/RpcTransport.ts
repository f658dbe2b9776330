/**
 * RpcTransport: one JSON-RPC POST over globalThis.fetch and the reading of its reply — what went wrong classified
 * once (RpcFailure), a reply object turned into an item's outcome (a null result is a missing item, never a value),
 * a batch reply matched to its calls by id. No policy here: RpcClient decides what each outcome leads to.
 */
import type { Call } from "../RpcClient.js"
import * as Failure from "./RpcFailure.js"

export type Outcome = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly failure: Failure.Failure }

/** Checks an item's result: a failure when it is not what was asked for. */
export type Validate = (result: unknown, index: number) => Failure.Failure | undefined

export type Posted = { readonly _tag: "Json"; readonly json: unknown } | { readonly _tag: "Failed"; readonly failure: Failure.Failure }

/** Replies above this are refused unread (a JavaScript string holds at most ~512 MB). */
const maxResponseBytes = 256 * 1024 * 1024

/** One POST of `body`; aborted after `timeoutMs` or by `signal`. Never rejects: failures come back classified, with no part of the URL past its host. */
export const post = async (url: string, body: string, method: string, timeoutMs: number, now: number, signal: AbortSignal): Promise<Posted> => {
  const posted = await postRaw(url, body, method, timeoutMs, now, signal)
  if (posted._tag === "Json") return posted
  const message = scrub(posted.failure.message, url)
  return message === posted.failure.message ? posted : { _tag: "Failed", failure: { ...posted.failure, message } }
}

const postRaw = async (url: string, body: string, method: string, timeoutMs: number, now: number, signal: AbortSignal): Promise<Posted> => {
  const timeout = AbortSignal.timeout(timeoutMs)
  try {
    const response = await globalThis.fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
      signal: AbortSignal.any([signal, timeout])
    })
    // A reply this big cannot be parsed in one string: ask for less instead of reading it.
    if (Number(response.headers.get("content-length") ?? 0) > maxResponseBytes) {
      await response.body?.cancel()
      return { _tag: "Failed", failure: Failure.tooLarge("reply larger than 256 MB") }
    }
    const text = await response.text()
    if (!response.ok) {
      return { _tag: "Failed", failure: Failure.classifyHttp(response.status, text.slice(0, 4000), Failure.retryAfterMs(response.headers.get("retry-after"), now), method) }
    }
    try {
      return { _tag: "Json", json: JSON.parse(text) as unknown }
    } catch (cause) {
      return { _tag: "Failed", failure: Failure.classifyBody(text.slice(0, 500), method, cause) }
    }
  } catch (cause) {
    return { _tag: "Failed", failure: Failure.classifyNetwork(cause, method, timeout.aborted) }
  }
}

/** One reply object of a call: its error classified, a null or invalid result a missing item. */
const outcomeOf = (reply: unknown, call: Call, index: number, validate: Validate): Outcome => {
  if (typeof reply !== "object" || reply === null) return { ok: false, failure: Failure.transient(`malformed reply to ${call.method}`) }
  const { error, result } = reply as { readonly error?: Failure.RpcErrorObject | null; readonly result?: unknown }
  if (error !== undefined && error !== null) return { ok: false, failure: Failure.classifyError(error, call.method) }
  if (result === undefined || result === null) return { ok: false, failure: Failure.missingItem(`${call.method}(${describeParams(call.params)}) returned ${String(result)}`) }
  const invalid = validate(result, index)
  return invalid === undefined ? { ok: true, value: result } : { ok: false, failure: invalid }
}

/** The reply to one call sent alone. */
export const singleOutcome = (json: unknown, call: Call, validate: Validate): Outcome =>
  outcomeOf(Array.isArray(json) && json.length === 1 ? json[0] : json, call, 0, validate)

/**
 * The reply to a batch whose ids run from `firstId`: per-item outcomes when at least one item came back, else the
 * batch's failure. One error object instead of the replies refuses the batch whole.
 */
export const batchOutcomes = (json: unknown, calls: ReadonlyArray<Call>, firstId: number, validate: Validate): Array<Outcome> | Failure.Failure => {
  if (!Array.isArray(json)) return refusal(json, calls)
  const byId = new Map<number, unknown>()
  for (const reply of json) {
    const id = typeof reply === "object" && reply !== null ? Number((reply as { readonly id?: unknown }).id) : Number.NaN
    if (!Number.isNaN(id)) byId.set(id, reply)
  }
  // An array answering none of the calls (one error with id null): the batch refused whole too.
  if (json.length > 0 && !calls.some((_, i) => byId.has(firstId + i))) return refusal(json[0], calls)
  const outcomes = calls.map((call, i): Outcome => {
    const reply = byId.get(firstId + i)
    if (reply === undefined) return { ok: false, failure: Failure.missingItem(`no reply for ${call.method}(${describeParams(call.params)}) in a batch of ${calls.length}`) }
    const outcome = outcomeOf(reply, call, i, validate)
    // One item too large is not the batch's size: retried like any passing failure.
    return !outcome.ok && outcome.failure._tag === "TooLarge" ? { ok: false, failure: Failure.transient(outcome.failure.message) } : outcome
  })
  // A reverted call is an answer too: the batch came back.
  if (outcomes.some((o) => o.ok || o.failure._tag === "Reverted")) return outcomes
  const failures = outcomes.flatMap((o) => (o.ok ? [] : [o.failure]))
  return failures.find((f) => f._tag === "RateLimited") ?? failures.find((f) => f._tag !== "Permanent") ?? failures[0]!
}

/**
 * `text` without the URL's secrets: the URL itself, and its path segments, user info and query values of 6 or more
 * characters (API keys), which errors and providers' messages may echo.
 */
const scrub = (text: string, url: string): string => {
  const parts = [url]
  if (URL.canParse(url)) {
    const u = new URL(url)
    parts.push(u.username, u.password, ...u.pathname.split("/"), ...[...u.searchParams.values()])
  }
  let out = text
  for (const part of parts) if (part.length >= 6) out = out.replaceAll(part, "<redacted>")
  return out
}

/** A batch answered by one reply object: TooLarge (with the size the provider names, if it does), unless it says to slow down. */
const refusal = (reply: unknown, calls: ReadonlyArray<Call>): Failure.Failure => {
  const error = typeof reply === "object" && reply !== null ? (reply as { readonly error?: Failure.RpcErrorObject }).error : undefined
  const failure = error === undefined ? undefined : Failure.classifyError(error, methodOf(calls))
  if (failure?._tag === "RateLimited") return failure
  const message = failure?.message ?? "reply is not an array"
  return Failure.tooLarge(`batch of ${calls.length} refused: ${message}`, { limit: Failure.batchLimitOf(message, calls.length) })
}

/** The method of a batch's calls, or "batch" when they differ. */
export const methodOf = (calls: ReadonlyArray<Call>): string => {
  const method = calls[0]?.method ?? "batch"
  for (const c of calls) if (c.method !== method) return "batch"
  return method
}

const describeParams = (params: ReadonlyArray<unknown>): string => {
  const text = JSON.stringify(params) ?? ""
  return text.length > 120 ? `${text.slice(1, 117)}…` : text.slice(1, -1)
}
