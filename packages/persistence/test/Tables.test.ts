import { assert, describe, it } from "@effect/vitest"
import { Result, Schema } from "effect"
import { Entity } from "@chainstore/core"
import { Tables } from "@chainstore/persistence"
import { Account, AllTypes, makeIndexer } from "./fixtures.js"

const layout = (entities: ReadonlyArray<Entity.Any>, schema = "public") => {
  const result = Tables.make(makeIndexer({ entities }), schema)
  assert.isTrue(Result.isSuccess(result))
  return (result as Result.Success<Tables.Layout, string>).success
}

const failure = (entities: ReadonlyArray<Entity.Any>, schema = "public") => {
  const result = Tables.make(makeIndexer({ entities }), schema)
  assert.isTrue(Result.isFailure(result))
  return (result as Result.Failure<Tables.Layout, string>).failure
}

describe("Tables", () => {
  it("names entity, history and effect tables", () => {
    const l = layout([AllTypes, Account])
    assert.deepStrictEqual(l.entities.map((t) => [t.name, t.history]), [["all_types", "chainstore_history_all_types"], ["account", "chainstore_history_account"]])
    assert.deepStrictEqual(l.effects.map((t) => [t.name, t.reorgSensitive]), [["chainstore_effect_price", false], ["chainstore_effect_head_block", true], ["chainstore_effect_read_contract", true]])
    assert.deepStrictEqual(l.entities[1]?.indexes, ["owner", "balance"])
  })

  it("refuses schema and entity names that cannot be identifiers or do not fit 63 bytes once prefixed", () => {
    assert.include(failure([Account], "bad-schema"), "schema name \"bad-schema\"")
    assert.include(failure([Account], "s".repeat(64)), "longer than 63 bytes")
    assert.include(failure([Entity.make("E".repeat(45), { id: Schema.String })]), "would pass 63 bytes")
    assert.include(failure([Entity.make("TokenInfo", { id: Schema.String }), Entity.make("token_info", { id: Schema.String })]), "both map to table \"token_info\"")
    assert.strictEqual(layout([Entity.make("E".repeat(44), { id: Schema.String })]).entities[0]?.history.length, 63)
  })

  it("fingerprints definitions independently of entity and field order, and names the differences", () => {
    const a = Entity.make("A", { id: Schema.String, x: Schema.String, y: Schema.BigInt })
    const aReordered = Entity.make("A", { y: Schema.BigInt, id: Schema.String, x: Schema.String })
    const aChanged = Entity.make("A", { id: Schema.String, x: Schema.optional(Schema.String), z: Schema.Boolean })
    const defs = Tables.definitions(layout([a, Account]))
    assert.strictEqual(Tables.fingerprint(defs), Tables.fingerprint(Tables.definitions(layout([Account, aReordered]))))
    assert.deepStrictEqual(Tables.diff(defs, Tables.definitions(layout([aChanged]))), [
      "table \"account\" is stored but no entity defines it any more",
      "column \"a\".\"y\" was removed",
      "column \"a\".\"x\" changed from required to optional",
      "column \"a\".\"z\" was added"
    ])
  })

  it("keeps index names within 63 bytes", () => {
    assert.strictEqual(Tables.indexName("account", "owner"), "account_owner_idx")
    const long = Tables.indexName("t".repeat(40), "c".repeat(30))
    assert.isAtMost(long.length, 63)
    assert.notStrictEqual(long, Tables.indexName("t".repeat(40), "c".repeat(31)))
  })
})
