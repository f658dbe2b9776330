import { onchainTable } from "ponder"

export const account = onchainTable("account", (t) => ({
  address: t.hex().primaryKey(),
  balance: t.bigint().notNull(),
  transferCount: t.integer().notNull()
}))
