// Bad values from handlers: typed errors naming entity, field and event, before the batch is written.
import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Layer, Schema } from "effect"
import { Config, Entity, Errors, Indexer, Runtime, Source, Storage } from "@chainstore/core"
import { erc20Abi, TOKEN, ZERO, account } from "../../packages/core/test/fixtures.js"

const Holding = Entity.make("Holding", { id: Schema.String, amount: Schema.BigInt, note: Schema.String })

const blocks: Array<Source.MemoryBlock> = Array.from({ length: 6 }, (_, b) => ({
  number: b + 1,
  events: [{ contractName: "ERC20", eventName: "Transfer", params: { from: ZERO, to: account(b), value: BigInt(b + 1) } }]
}))

const run = (handler: Indexer.Handler<{ readonly to: string; readonly value: bigint }, readonly [typeof Holding]>) =>
  Effect.gen(function*() {
    const indexer = Indexer.make({
      entities: [Holding],
      chains: [{ id: 1, source: Source.memory(blocks).source, startBlock: 1, endBlock: 6, contracts: [{ name: "ERC20", abi: erc20Abi, address: TOKEN }] }],
      handlers: { ERC20: { Transfer: handler } }
    })
    const error = yield* Effect.flip(Runtime.run(indexer))
    const memory = yield* Storage.MemoryStorage
    return { error, rows: yield* memory.rows("Holding"), status: yield* (yield* Storage.Storage).status }
  }).pipe(Effect.provide(Layer.fresh(Storage.layerMemory)), Effect.provide(Config.layer({ batchSize: 1 })))

/** The EntityValidationError a handler's failure carries (its cause is the handler's Cause). */
const invalidValue = (cause: unknown): Errors.EntityValidationError => {
  const squashed = Cause.isCause(cause) ? Cause.squash(cause) : cause
  assert.instanceOf(squashed, Errors.EntityValidationError)
  return squashed as Errors.EntityValidationError
}

describe("bad values", () => {
  it.effect("a bigint outside numeric(78,0) is refused naming entity, field and event; earlier batches stay written", () =>
    Effect.gen(function*() {
      const { error, rows, status } = yield* run((event, ctx) =>
        ctx.Holding.set({ id: event.params.to, amount: event.blockNumber === 4 ? 10n ** 78n : event.params.value, note: "" }))
      assert.instanceOf(error, Errors.HandlerError)
      const cause = (error as Errors.HandlerError).cause
      assert.match((error as Errors.HandlerError).message, /Holding 0x0+4 is invalid \(event ERC20\.Transfer on chain 1, block 4, log index 0\): amount = 1000+ does not fit numeric\(78,0\)/)
      assert.deepInclude(invalidValue(cause), { entity: "Holding", entityId: account(3), field: "amount" })
      assert.strictEqual(rows.size, 3)
      assert.strictEqual(status.chains[0]!.progressBlock, 3)
    }))

  it.effect("a value that does not match the entity's schema is refused naming the field and event", () =>
    Effect.gen(function*() {
      const { error, rows } = yield* run((event, ctx) =>
        ctx.Holding.set({ id: event.params.to, amount: event.params.value, note: (event.blockNumber === 2 ? 42 : "ok") as string }))
      assert.instanceOf(error, Errors.HandlerError)
      const message = (error as Errors.HandlerError).message
      assert.match(message, /Holding 0x0+2 is invalid \(event ERC20\.Transfer on chain 1, block 2, log index 0\)/)
      assert.match(message, /note/)
      assert.deepInclude(invalidValue((error as Errors.HandlerError).cause), { entity: "Holding", entityId: account(1) })
      assert.strictEqual(rows.size, 1)
    }))
})
