/**
 * Effect-cache benchmark indexer: each Transfer asks a slow external call (20 ms, like an RPC) about one of 10,000
 * inputs drawn Zipf-like from the event, and books the answer. EFFECT_CACHE=memory makes the effect `cache: false`.
 */
import * as fs from "node:fs"
import { Effect, Schema } from "effect"
import { Entity, ExternalEffect, Indexer, SimChain } from "@chainstore/core"

const abi = SimChain.abi

const Seen = Entity.make("Seen", { id: Schema.String, score: Schema.Int, hits: Schema.Int })
const inputs = 10_000

/** Input rank for an event: P(rank k) ∝ 1/k (Zipf, s = 1), from a deterministic hash of block and log index. */
const cumulative = (() => {
  const weights = Array.from({ length: inputs }, (_, k) => 1 / (k + 1))
  const total = weights.reduce((a, b) => a + b, 0)
  let acc = 0
  return weights.map((w) => (acc += w / total))
})()
const rank = (block: number, log: number): number => {
  const u = (((block * 2654435761) ^ (log * 40503)) >>> 0) / 2 ** 32
  let lo = 0
  let hi = inputs - 1
  while (lo < hi) {
    const mid = (lo + hi) >> 1
    if (cumulative[mid]! < u) lo = mid + 1
    else hi = mid
  }
  return lo
}

const log = process.env.EFFECT_CALL_LOG
const score = ExternalEffect.make({
  name: "score",
  input: Schema.Struct({ item: Schema.Int }),
  output: Schema.Int,
  cache: process.env.EFFECT_CACHE !== "memory",
  run: ({ item }) =>
    Effect.as(Effect.sleep("20 millis"), (item * 7919) % 1000).pipe(Effect.tap(() => Effect.sync(() => log !== undefined && fs.appendFileSync(log, `${item}\n`))))
})

export default Indexer.make({
  entities: [Seen],
  effects: [score],
  chains: [{ id: 1337, source: SimChain.source({ blocks: 1000, eventsPerBlock: 100 }), startBlock: 1, contracts: [{ name: "Token", abi, address: "0x00000000000000000000000000000000000000ca" }] }],
  handlers: {
    Token: {
      Transfer: (event, ctx) =>
        Effect.gen(function*() {
          const item = rank(event.blockNumber, event.logIndex)
          const value = yield* ctx.effect(score, { item })
          const seen = yield* ctx.Seen.get(String(item))
          yield* ctx.Seen.set({ id: String(item), score: value, hits: (seen?.hits ?? 0) + 1 })
        })
    }
  }
})
