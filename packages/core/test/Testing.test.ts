// A handler test as a user writes it, with the test kit.
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { Source } from "@chainstore/core"
import * as Testing from "@chainstore/core/testing"
import { Account, TOKEN, Token, ZERO, makeIndexer } from "./fixtures.js"

const indexer = makeIndexer({ source: Source.memory([]).source })
const alice = "0x00000000000000000000000000000000000a11ce"
const bob = "0x0000000000000000000000000000000000000b0b"

describe("Testing kit", () => {
  it.effect("a mint then a transfer move balances and count transfers", () =>
    Effect.gen(function*() {
      const db = yield* Testing.run(indexer, [
        Testing.event("ERC20", "Transfer", { from: ZERO, to: alice, value: 100n }, { blockNumber: 10 }),
        Testing.event("ERC20", "Transfer", { from: alice, to: bob, value: 30n }, { blockNumber: 11 })
      ])
      assert.strictEqual((yield* db.get(Account, alice))?.balance, 70n)
      assert.strictEqual((yield* db.get(Account, bob))?.balance, 30n)
      assert.deepStrictEqual(yield* db.get(Token, TOKEN), { id: TOKEN, supply: 100n, transfers: 2 })
      assert.strictEqual((yield* db.all(Account)).length, 2)
    }).pipe(Effect.provide(Testing.layer)))
})
