// Hostile data through the whole runtime into real databases: NULs stripped, lone surrogates replaced,
// empty, 1 MB and 100-level-deep values stored as given — on Postgres and on embedded PGlite.
import { Effect, Layer, Redacted, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { describe, expect, it } from "vitest"
import { Entity, Indexer, Runtime, Source, type Storage } from "@chainstore/core"
import { Embedded, PgStorage } from "@chainstore/persistence"
import { postgresUrl, tempDir } from "../support/cli.js"

const abi = [{
  type: "event",
  name: "Note",
  anonymous: false,
  inputs: [{ name: "text", type: "string", indexed: false }]
}] as const

const Note = Entity.make("Note", { id: Schema.String, text: Schema.String, payload: Schema.Unknown })

const nest = (depth: number): unknown => (depth === 0 ? { leaf: "bottom\u0000" } : { next: nest(depth - 1) })
const mb = "x".repeat(1024 * 1024)
const inputs: Record<string, unknown> = {
  nul: "a\u0000b",
  surrogate: "lone \ud800 high",
  empty: "",
  big: mb,
  deep: "deep"
}

const indexer = Indexer.make({
  entities: [Note],
  rawEvents: true,
  chains: [{
    id: 1,
    source: Source.memory([{
      number: 1,
      events: Object.entries(inputs).map(([kind, text]) => ({
        contractName: "Notes",
        eventName: "Note",
        params: { text, kind, nested: kind === "deep" ? nest(100) : { inner: ["x\u0000y", { z: "\u0000" }] } }
      }))
    }]).source,
    startBlock: 1,
    endBlock: 1,
    contracts: [{ name: "Notes", abi, address: "0x00000000000000000000000000000000000000d0" }]
  }],
  handlers: {
    Notes: {
      Note: (event, ctx) => {
        const params = event.params as unknown as { readonly text: string; readonly kind: string; readonly nested: unknown }
        return ctx.Note.set({ id: params.kind, text: params.text, payload: params.nested })
      }
    }
  }
})

const depthOf = (value: unknown): number => (typeof value === "object" && value !== null && "next" in value ? 1 + depthOf((value as { next: unknown }).next) : 0)

const backends: Array<[string, () => { client: Layer.Layer<SqlClient.SqlClient, unknown>; schema: string }]> = [
  ["postgres", () => ({ client: Embedded.layerPostgres({ url: Redacted.make(postgresUrl) }), schema: `cs_data_${Math.random().toString(36).slice(2, 10)}` })],
  ["pglite", () => ({ client: Embedded.layerEmbedded({ dataDir: `${tempDir("cs-data-")}/.chainstore` }), schema: "public" })]
]

describe.each(backends)("hostile data on %s", (_, backend) => {
  it("is stored stripped of NULs, with U+FFFD for lone surrogates, and otherwise exactly as given", async () => {
    const { client, schema } = backend()
    const rows = await Effect.runPromise(Effect.gen(function*() {
      yield* Runtime.run(indexer).pipe(Effect.provide(PgStorage.layer({ schema }) as Layer.Layer<Storage.Storage, unknown, SqlClient.SqlClient>))
      const sql = yield* SqlClient.SqlClient
      const notes = yield* sql.unsafe<{ id: string; text: string; payload: unknown }>(`select id, text, payload from "${schema}".note order by id`)
      const raw = yield* sql.unsafe<{ params: { text: string; nested: unknown } }>(`select params from "${schema}".chainstore_raw_events order by log_index`)
      if (schema !== "public") yield* sql.unsafe(`drop schema "${schema}" cascade`)
      return { notes, raw }
    }).pipe(Effect.scoped, Effect.provide(Layer.fresh(client))))
    const byId = new Map(rows.notes.map((r) => [r.id, r]))
    expect(byId.get("nul")!.text).toBe("ab")
    expect(byId.get("nul")!.payload).toEqual({ inner: ["xy", { z: "" }] })
    expect(byId.get("surrogate")!.text).toBe("lone \ufffd high")
    expect(byId.get("empty")!.text).toBe("")
    expect(byId.get("big")!.text).toBe(mb)
    expect(depthOf(byId.get("deep")!.payload)).toBe(100)
    expect(rows.raw.map((r) => r.params.text)).toEqual(["ab", "lone \ufffd high", "", mb, "deep"])
    expect(depthOf(rows.raw[4]!.params.nested)).toBe(100)
  })
})
