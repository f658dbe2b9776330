// The bookkeeping every indexer in bench/peers.ts does: per account, from -= value, to += value, one more transfer each.
import { ERC20 } from "generated";

ERC20.Transfer.handler(async ({ event, context }) => {
  const { from, to, value } = event.params;
  const sender = await context.Account.get(from);
  context.Account.set({ id: from, balance: (sender?.balance ?? 0n) - value, transferCount: (sender?.transferCount ?? 0) + 1 });
  const receiver = await context.Account.get(to);
  context.Account.set({ id: to, balance: (receiver?.balance ?? 0n) + value, transferCount: (receiver?.transferCount ?? 0) + 1 });
});
