/**
 * CacheCoverage: which blocks of a request the chain cache's stored ranges cover (pure). A request [from, to] is
 * answered in parts, in block order: a cached part from the stored range that covers its first block and reaches
 * furthest, a missing part up to where the next stored range starts. One read takes the cached parts a request starts
 * with up to about a number of logs, so a request far ahead does not read (and check) every range it spans at once.
 */

export interface Interval {
  readonly fromBlock: number
  readonly toBlock: number
}

export type Part<R extends Interval> =
  | { readonly _tag: "Cached"; readonly fromBlock: number; readonly toBlock: number; readonly range: R }
  | { readonly _tag: "Missing"; readonly fromBlock: number; readonly toBlock: number }

export type Cached<R extends Interval> = Extract<Part<R>, { readonly _tag: "Cached" }>

/** [fromBlock, toBlock] in parts covered by `ranges` (any order, may overlap) or missing, in block order. */
export const plan = <R extends Interval>(ranges: ReadonlyArray<R>, fromBlock: number, toBlock: number): Array<Part<R>> => {
  const parts: Array<Part<R>> = []
  let at = fromBlock
  while (at <= toBlock) {
    let best: R | undefined
    let next = toBlock + 1
    for (const range of ranges) {
      if (range.fromBlock <= at && range.toBlock >= at) {
        if (best === undefined || range.toBlock > best.toBlock) best = range
      } else if (range.fromBlock > at && range.fromBlock < next) next = range.fromBlock
    }
    if (best === undefined) {
      parts.push({ _tag: "Missing", fromBlock: at, toBlock: next - 1 })
      at = next
    } else {
      const end = Math.min(toBlock, best.toBlock)
      parts.push({ _tag: "Cached", fromBlock: at, toBlock: end, range: best })
      at = end + 1
    }
  }
  return parts
}

/**
 * The cached parts a request starts with, up to its first missing block (none when that is its first): what the
 * cache answers now; the rest waits for the next request, as after a provider's shortened range.
 */
export const leadingCached = <R extends Interval>(parts: ReadonlyArray<Part<R>>): Array<Cached<R>> => {
  const cached: Array<Cached<R>> = []
  for (const part of parts) {
    if (part._tag === "Missing") break
    cached.push(part)
  }
  return cached
}

/**
 * Where a read of [fromBlock, toBlock] ends: after the cached parts it starts with once their ranges hold `logs` logs
 * (at least one part), else where they end; when it starts with a missing part, where that ends.
 */
export const readEnd = <R extends Interval & { readonly logCount: number }>(ranges: ReadonlyArray<R>, fromBlock: number, toBlock: number, logs: number): number => {
  const parts = plan(ranges, fromBlock, toBlock)
  const cached = leadingCached(parts)
  if (cached.length === 0) return parts[0]!.toBlock
  let read = 0
  for (const part of cached) {
    read += part.range.logCount
    if (read >= logs) return part.toBlock
  }
  return cached.at(-1)!.toBlock
}

/** `intervals` merged where they overlap or touch, in block order. */
export const merge = (intervals: ReadonlyArray<Interval>): Array<Interval> => {
  const sorted = [...intervals].sort((a, b) => a.fromBlock - b.fromBlock)
  const out: Array<Interval> = []
  for (const interval of sorted) {
    const last = out.at(-1)
    if (last !== undefined && interval.fromBlock <= last.toBlock + 1) {
      out[out.length - 1] = { fromBlock: last.fromBlock, toBlock: Math.max(last.toBlock, interval.toBlock) }
    } else out.push({ fromBlock: interval.fromBlock, toBlock: interval.toBlock })
  }
  return out
}
