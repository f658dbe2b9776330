// The bookkeeping every indexer in bench/peers.ts does: per account, from -= value, to += value, one more transfer each.
import { ponder } from "ponder:registry"
import { account } from "ponder:schema"

ponder.on("Token:Transfer", async ({ event, context }) => {
  const { from, to, value } = event.args
  await context.db.insert(account).values({ address: from, balance: -value, transferCount: 1 })
    .onConflictDoUpdate((row) => ({ balance: row.balance - value, transferCount: row.transferCount + 1 }))
  await context.db.insert(account).values({ address: to, balance: value, transferCount: 1 })
    .onConflictDoUpdate((row) => ({ balance: row.balance + value, transferCount: row.transferCount + 1 }))
})
