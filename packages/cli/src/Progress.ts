/**
 * Progress: what a run shows while it works — on a TTY a live line per chain, otherwise a log line every few
 * seconds: block / target, blocks/s, events/s, ETA, objects vs target, write queue depth, committed block, and
 * whether the chain's RPC is unavailable (since when).
 */
import { Clock, Duration, Effect, Metric } from "effect"
import { Metrics, type Processor, type Store } from "@chainstore/core"

export interface Options {
  readonly tty: boolean
  readonly objectsTarget: number
}

const compact = (n: number): string =>
  n >= 1e6 ? `${(n / 1e6).toFixed(1)}M` : n >= 1e4 ? `${(n / 1e3).toFixed(0)}k` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}k` : `${Math.round(n)}`

const eta = (seconds: number): string =>
  !Number.isFinite(seconds) ? "–" : seconds < 90 ? `${Math.ceil(seconds)}s` : seconds < 5400 ? `${Math.ceil(seconds / 60)}m` : `${(seconds / 3600).toFixed(1)}h`

/** One line per chain describing progress since the previous sample. */
export const lines = (
  chains: ReadonlyArray<Processor.ChainReport>,
  previous: ReadonlyMap<number, { readonly block: number; readonly events: number; readonly at: number }>,
  now: number,
  store: Store.Store["Service"],
  objectsTarget: number,
  rpcDownSince: ReadonlyMap<number, number> = new Map()
): Array<string> =>
  chains.map((c) => {
    const before = previous.get(c.chainId)
    const seconds = before === undefined ? 0 : (now - before.at) / 1000
    const blocksPerSecond = seconds > 0 ? (c.processedBlock - before!.block) / seconds : 0
    const eventsPerSecond = seconds > 0 ? (c.eventsProcessed - before!.events) / seconds : 0
    const target = c.endBlock ?? c.head
    const left = Math.max(0, target - c.processedBlock)
    return `chain ${c.chainId}: block ${c.processedBlock}/${target} | ${compact(blocksPerSecond)} blocks/s | ${compact(eventsPerSecond)} events/s | ETA ${
      left === 0 ? "0s" : eta(blocksPerSecond > 0 ? left / blocksPerSecond : Number.POSITIVE_INFINITY)} | objects ${compact(store.counts().total)}/${compact(objectsTarget)} | queue ${store.queuedBatches()} | committed ${
      store.committedBlocks().get(c.chainId) ?? "–"}${rpcDown(rpcDownSince.get(c.chainId), now)}`
  })

/** " | RPC unavailable since …" while the chain's RPC requests keep failing (the gauge holds the outage's start). */
const rpcDown = (since: number | undefined, now: number): string =>
  since === undefined || since <= 0 ? "" :
  ` | RPC unavailable since ${new Date(since * 1000).toISOString().slice(11, 19)} (${eta(Math.max(0, now / 1000 - since))})`

/** Per chain, when its current RPC outage began (Unix seconds), from the RPC client's gauge. */
const rpcOutages = (chains: ReadonlyArray<Processor.ChainReport>) =>
  Effect.map(
    Effect.forEach(chains, (c) => Effect.map(Metric.value(Metrics.forChain(Metrics.rpcUnavailableSince, c.chainId)), (state) => [c.chainId, state.value] as const)),
    (entries) => new Map(entries)
  )

/** Reports until interrupted (fork it into the run's scope). */
export const report = (processor: Processor.Processor["Service"], store: Store.Store["Service"], options: Options) =>
  Effect.gen(function*() {
    const previous = new Map<number, { block: number; events: number; at: number }>()
    const start = yield* Clock.currentTimeMillis
    for (const c of yield* processor.chains) previous.set(c.chainId, { block: c.processedBlock, events: c.eventsProcessed, at: start })
    let drawn = 0
    while (true) {
      yield* Effect.sleep(Duration.seconds(options.tty ? 1 : 5))
      const now = yield* Clock.currentTimeMillis
      const chains = yield* processor.chains
      const text = lines(chains, previous, now, store, options.objectsTarget, yield* rpcOutages(chains))
      for (const c of chains) previous.set(c.chainId, { block: c.processedBlock, events: c.eventsProcessed, at: now })
      if (options.tty) {
        // Redraw the block of lines in place.
        process.stderr.write(`${drawn > 0 ? `\x1b[${drawn}A` : ""}${text.map((l) => `\x1b[2K${l}\n`).join("")}`)
        drawn = text.length
      } else {
        for (const line of text) yield* Effect.logInfo(line)
      }
    }
  })
