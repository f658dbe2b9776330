import { assert, describe, it } from "@effect/vitest"
import { Effect, Result, Schema } from "effect"
import { Entity, Indexer, SimChain } from "@chainstore/core"
import { Catalog } from "@chainstore/api"
import { Account, erc20 } from "./fixtures.js"

const withEntities = (entities: ReadonlyArray<Entity.Any>) => ({ ...erc20({ blocks: 1 }), entities })

describe("Catalog", () => {
  it("names query fields, scalars and reverse lists from the entity definitions", () => {
    const catalog = Result.getOrThrow(Catalog.make(erc20({ blocks: 1 }), "public"))
    const account = Catalog.entity(catalog, "Account")
    const transfer = Catalog.entity(catalog, "Transfer")
    assert.deepStrictEqual([account.single, account.list, transfer.single, transfer.list], ["account", "accounts", "transfer", "transfers"])
    assert.deepStrictEqual(account.fields.map((f) => [f.name, f.scalar]), [["id", "ID"], ["balance", "BigInt"]])
    assert.deepStrictEqual(transfer.fields.map((f) => [f.name, f.scalar, f.references]), [
      ["id", "ID", undefined], ["from", "Address", "Account"], ["to", "Address", "Account"], ["value", "BigInt", undefined], ["block", "Int8", undefined]
    ])
    assert.deepStrictEqual(account.derived.map((d) => d.name), ["transfersByFrom", "transfersByTo"])
  })

  it("pluralises and lowercases names as field names", () => {
    assert.deepStrictEqual(["entry", "box", "account", "status"].map(Catalog.plural), ["entries", "boxes", "accounts", "statuses"])
    assert.deepStrictEqual(["NFTOwner", "Account", "ID", "URLs"].map(Catalog.lowerFirst), ["nftOwner", "account", "id", "urLs"])
  })

  it("refuses entities that collide with the names it generates, and references that cannot hold ids", () => {
    const cases: Array<[ReadonlyArray<Entity.Any>, RegExp]> = [
      [[Entity.make("Query", { id: Schema.String })], /type name the query API uses itself/],
      [[Account, Entity.make("AccountPage", { id: Schema.String })], /collides with the Page type of entity "Account"/],
      [[Account, Entity.make("Holder", { id: Schema.String, account: Schema.Int }, { references: { account: "Account" } })], /must be a string field/],
      [[Entity.make("Account", { id: Schema.String, holdersByOwner: Schema.String }), Entity.make("Holder", { id: Schema.String, owner: Schema.String }, { references: { owner: "Account" } })], /the name of its reverse list of Holder.owner/]
    ]
    for (const [entities, message] of cases) {
      const result = Catalog.make(withEntities(entities), "public")
      assert.isTrue(Result.isFailure(result))
      if (Result.isFailure(result)) assert.match(result.failure, message)
    }
  })

  it("Indexer.validate checks references: the field exists and the entity is one of the indexer's", () => {
    const bad = Indexer.make({
      entities: [Entity.make("Holder", { id: Schema.String, owner: Schema.String }, { references: { owner: "Nobody" } })],
      chains: [{ id: 1, source: SimChain.source(SimChain.defaults), startBlock: 1, contracts: [] }],
      handlers: {}
    })
    const error = Effect.runSync(Effect.flip(Indexer.validate(bad, "x.ts")))
    assert.match(error.message, /"Nobody" is not an entity of this indexer/)
    assert.match(error.path, /entities\[0\]\.references\.owner/)
  })
})
