import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { Indexer, SimChain, Storage, Store } from "@chainstore/core"
import * as Progress from "../src/Progress.js"

const indexer = Indexer.make({ entities: [], chains: [{ id: 1, source: SimChain.source({ blocks: 1 }), startBlock: 1, contracts: [] }], handlers: {} })
const chain = { chainId: 1, processedBlock: 50, head: 100, endBlock: undefined, eventsProcessed: 500 }

describe("Progress", () => {
  it.effect("a chain whose RPC is down says since when and for how long; an available one says nothing of it", () =>
    Effect.gen(function*() {
      const store = yield* Store.Store
      const previous = new Map([[1, { block: 40, events: 400, at: 0 }]])
      const now = Date.UTC(2026, 11, 2, 12, 0, 30)
      const down = Progress.lines([chain], previous, now, store, 1000, new Map([[1, Date.UTC(2026, 11, 2, 12, 0, 0) / 1000]]))
      assert.match(down[0]!, /^chain 1: block 50\/100 \| .* \| RPC unavailable since 12:00:00 \(30s\)$/)
      const up = Progress.lines([chain], previous, now, store, 1000, new Map([[1, 0]]))
      assert.notInclude(up[0]!, "RPC")
    }).pipe(Effect.provide(Store.layer(indexer)), Effect.provide(Storage.layerMemory)))
})
