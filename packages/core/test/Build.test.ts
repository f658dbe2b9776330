import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Layer } from "effect"
import { Build, Runtime, Source, Storage } from "@chainstore/core"
import { makeIndexer, ZERO, account } from "./fixtures.js"

const indexer = makeIndexer({ source: Source.memory([]).source, endBlock: 1 })
const build = (id: string, code: string, chains = Build.chainsOf(indexer)): Build.Build => ({ id, code, chains })

describe("Build", () => {
  it("names what differs: code, chains added or removed, start blocks, contracts, block handlers", () => {
    const base = build("a", "c1")
    assert.deepStrictEqual(Build.changes(base, build("a", "c1")), [])
    assert.deepStrictEqual(Build.changes(base, build("b", "c2")), ["the indexer's code changed (its module or a file it imports)"])
    const [chain] = base.chains
    const moved = { ...chain!, startBlock: 7, contracts: chain!.contracts.map((c) => ({ ...(c as object), address: "0x00000000000000000000000000000000000000bb" })) }
    assert.deepStrictEqual(Build.changes(base, build("b", "c1", [moved, { ...chain!, id: 9 }])), [
      `chain ${chain!.id}: startBlock ${chain!.startBlock} → 7`,
      `chain ${chain!.id}: contract ERC20 changed (addresses, events, filters or fields)`,
      "chain 9 was added"
    ])
    assert.deepStrictEqual(Build.changes(build("b", "c1", [moved]), base).slice(-1), [`chain ${chain!.id}: contract ERC20 changed (addresses, events, filters or fields)`])
    assert.deepStrictEqual(Build.changes(base, build("b", "c1", [])), [`chain ${chain!.id} was removed`])
  })

  it("compares configuration regardless of key order (a build read back from jsonb has its keys reordered)", () => {
    const base = build("a", "c1")
    const reordered = JSON.parse(JSON.stringify(base.chains, (_, v) =>
      v !== null && typeof v === "object" && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).reverse()) : v)) as ReadonlyArray<Build.ChainConfig>
    assert.deepStrictEqual(Build.changes(build("x", "c1", reordered), build("y", "c1")), ["build x → y"])
  })

  it.effect("storage resumes only its own build: another build fails with BuildChangedError, tables untouched; no build is never checked", () =>
    Effect.gen(function*() {
      const source = Source.memory([{ number: 1, events: [{ contractName: "ERC20", eventName: "Transfer", params: { from: ZERO, to: account(1), value: 5n } }] }]).source
      const plain = makeIndexer({ source, endBlock: 1 })
      yield* Runtime.run({ ...plain, build: build("a", "c1") })
      yield* Runtime.run({ ...plain, build: build("a", "c1") })
      const exit = yield* Effect.exit(Runtime.run({ ...plain, build: build("b", "c2") }))
      assert.isTrue(Exit.isFailure(exit))
      if (Exit.isFailure(exit)) {
        const error = exit.cause.reasons.find((r) => r._tag === "Fail")
        assert.strictEqual(error?._tag === "Fail" ? (error.error as { _tag: string })._tag : undefined, "BuildChangedError")
      }
      assert.strictEqual((yield* (yield* Storage.MemoryStorage).rows("Account")).size, 1)
      yield* Runtime.run(plain)
    }).pipe(Effect.provide(Layer.fresh(Storage.layerMemory))))
})
