/**
 * bench/startup.ts's indexer: bench/peers's bookkeeping over the simulated chain (`--sim` sets its size), and on its
 * first event it writes the wall clock (ms since epoch) to FIRST_EVENT_FILE, for the benchmark to tell when the
 * first event reached a handler.
 */
import * as fs from "node:fs"
import { Effect, Schema } from "effect"
import { Entity, Indexer, SimChain } from "@chainstore/core"

export const Account = Entity.make("Account", { id: Schema.String, balance: Schema.BigInt })

const firstEventFile = process.env.FIRST_EVENT_FILE
let seen = false

export default Indexer.make({
  entities: [Account],
  chains: [{ id: 1337, source: SimChain.source({ blocks: 1, eventsPerBlock: 10 }), startBlock: 1, contracts: [{ name: "ERC20", abi: SimChain.abi, address: "0x00000000000000000000000000000000000000aa" }] }],
  handlers: {
    ERC20: {
      Transfer: (event, ctx) =>
        Effect.gen(function*() {
          if (!seen && firstEventFile !== undefined) {
            seen = true
            yield* Effect.sync(() => fs.writeFileSync(firstEventFile, String(Date.now())))
          }
          const { from, to, value } = event.params
          const sender = yield* ctx.Account.get(from)
          yield* ctx.Account.set({ id: from, balance: (sender?.balance ?? 0n) - value })
          const receiver = yield* ctx.Account.get(to)
          yield* ctx.Account.set({ id: to, balance: (receiver?.balance ?? 0n) + value })
        })
    }
  }
})
