/**
 * A token chain made of real contracts deployed unmodified from an npm package: OpenZeppelin Contracts 4.9.6's
 * ERC20PresetMinterPauser and ERC721PresetMinterPauserAutoId (compiled by contracts/compile.ts), plus Multicall3 at
 * its canonical address. `buildTokenChain` mints, transfers, approves, spends allowances and burns from several of
 * anvil's dev accounts, several transactions in some blocks, over many blocks; the readers below ask the chain
 * itself (balanceOf, totalSupply at a block, eth_getLogs, receipts), for tests to compare an indexer's rows with.
 * Addresses returned here are lowercase, as events carry them.
 */
import {
  type Abi,
  type Address,
  type Hash,
  type Hex,
  type LocalAccount,
  type TransactionReceipt,
  encodeDeployData,
  encodeFunctionData,
  hexToBigInt,
  keccak256,
  parseEventLogs,
  slice,
  toBytes
} from "viem"
import { mnemonicToAccount } from "viem/accounts"
import {
  erc20PresetMinterPauserAbi,
  erc20PresetMinterPauserBytecode,
  erc721PresetMinterPauserAutoIdAbi,
  erc721PresetMinterPauserAutoIdBytecode
} from "../../contracts/artifacts.js"
import { type Anvil, type Deployed, type Multicall3, deployMulticall3, head } from "./anvil.js"

/** Anvil's default dev mnemonic (public): account 0 is anvil.account; anvil funds accounts 0..9 with 10000 ETH. */
export const devMnemonic = "test test test test test test test test test test test junk"

/** The dev account at `index` of devMnemonic (m/44'/60'/0'/0/index), as anvil derives it. */
export const devAccount = (index: number): LocalAccount => mnemonicToAccount(devMnemonic, { addressIndex: index })

export const zeroAddress: Address = "0x0000000000000000000000000000000000000000"

/** The presets' minter role id: keccak256("MINTER_ROLE"). */
export const minterRole: Hex = keccak256(toBytes("MINTER_ROLE"))

export interface TokenDeployment extends Deployed {
  readonly name: string
  readonly symbol: string
}

export interface TokenChainOptions {
  /** Same seed, same transactions in the same blocks (timestamps, and so block hashes, still follow the clock). */
  readonly seed: number
  /** ERC20 presets (default 3); the last one is deployed a third of the way in, the others at the start. */
  readonly tokens?: number
  /** Dev accounts 1..holders (default 12); those past anvil's 10 funded ones get ETH with anvil_setBalance. */
  readonly holders?: number
  /** Blocks mined after Multicall3's (default 60, at least 6): deployments, role grants, then activity, some blocks empty. */
  readonly blocks?: number
}

export interface TokenChain {
  /** Deployed first, by the anvil account; at the canonical address from `multicall3.block` on. */
  readonly multicall3: Multicall3
  readonly erc20: ReadonlyArray<TokenDeployment>
  readonly erc721: TokenDeployment
  /** Multicall3's block; every token is deployed after it. */
  readonly fromBlock: number
  /** The head once everything is mined. */
  readonly toBlock: number
  /** Dev accounts 1..holders: every mint, transfer and burn is between these (and the zero address). */
  readonly holders: ReadonlyArray<Address>
  /** Accounts that sent at least one transaction: the anvil account (deployer, minter), a second minter (holders[0]), holders. */
  readonly senders: ReadonlyArray<Address>
  /** Every transaction sent after Multicall3's, in sending order; all succeeded. */
  readonly transactions: ReadonlyArray<Hash>
  /** Transactions per block from fromBlock + 1 to toBlock (0 for an empty block). */
  readonly blockTransactions: ReadonlyMap<number, number>
}

/** Gas limits given explicitly: estimating against the pending state would fail for calls that depend on unmined ones. */
const callGas = 500_000n
const deployGas = 8_000_000n
// Anvil's base fee starts at 1 gwei and only falls on blocks this small.
const maxFeePerGas = 10_000_000_000n
const maxPriorityFeePerGas = 1_000_000_000n

/**
 * Builds the chain: Multicall3 (automine, like deployMulticall3), then with automine off and one anvil_mine per block:
 * the next block deploys all ERC20 presets but the last and the ERC721 preset; the one after grants holders[0] the
 * minter role on them and mints to a few holders; a third of the way in the last ERC20 is deployed, its grant and
 * first mints follow in the next block;
 * every other block holds 0 (about 15%) or 1..6 random transactions: mints (by the anvil account or holders[0]),
 * transfers (sometimes to the sender itself), approvals and transferFrom by the spender (so the sender is not the
 * Transfer's `from`), burns, NFT mints, transfers and burns. A transaction only spends what its sender held when
 * the block began (less what it already spent in the block), so no ordering within a block can make one revert.
 * Automine is back on when this returns or fails.
 */
export const buildTokenChain = async (anvil: Anvil, options: TokenChainOptions): Promise<TokenChain> => {
  const tokenCount = options.tokens ?? 3
  const holderCount = options.holders ?? 12
  const blockCount = options.blocks ?? 60
  if (!Number.isInteger(tokenCount) || tokenCount < 1) throw new Error(`tokens must be a positive integer, got ${tokenCount}`)
  if (!Number.isInteger(holderCount) || holderCount < 2) throw new Error(`holders must be an integer >= 2, got ${holderCount}`)
  if (!Number.isInteger(blockCount) || blockCount < 6) throw new Error(`blocks must be an integer >= 6, got ${blockCount}`)
  const rng = random(options.seed)

  const deployer: LocalAccount = anvil.account
  const holderAccounts = Array.from({ length: holderCount }, (_, i) => devAccount(i + 1))
  const holders = holderAccounts.map((a) => lower(a.address))
  const accountOf = new Map<Address, LocalAccount>([[lower(deployer.address), deployer], ...holderAccounts.map((a) => [lower(a.address), a] as const)])
  for (const holder of holders) {
    if ((await anvil.publicClient.getBalance({ address: holder })) === 0n) await anvil.testClient.setBalance({ address: holder, value: 10n ** 22n })
  }

  const multicall3 = await deployMulticall3(anvil)
  const nonces = new Map<Address, number>()
  for (const address of accountOf.keys()) nonces.set(address, await anvil.publicClient.getTransactionCount({ address, blockTag: "pending" }))

  // The chain's state as the mined receipts' logs tell it: ERC20 balances and allowances, NFT owners.
  const erc20: Array<TokenDeployment> = []
  let erc721: TokenDeployment | undefined
  const balances = new Map<string, bigint>() // `${token}-${holder}`
  const allowances = new Map<string, bigint>() // `${token}-${owner}-${spender}`
  const nftOwners = new Map<bigint, Address>()
  const minters = new Map<Address, Array<Address>>() // token -> accounts holding the minter role (mined)
  const transactions: Array<Hash> = []
  const blockTransactions = new Map<number, number>()
  const senders = new Set<Address>()

  interface Planned {
    readonly from: Address
    readonly to?: Address
    readonly data: Hex
    readonly gas: bigint
    /** A deployment: recorded once mined. */
    readonly deploys?: { readonly kind: "ERC20" | "ERC721"; readonly name: string; readonly symbol: string }
  }

  const send = async (tx: Planned): Promise<Hash> => {
    const account = accountOf.get(tx.from)!
    const nonce = nonces.get(tx.from)!
    nonces.set(tx.from, nonce + 1)
    const serializedTransaction = await account.signTransaction({
      chainId: anvil.chainId,
      type: "eip1559",
      nonce,
      gas: tx.gas,
      maxFeePerGas,
      maxPriorityFeePerGas,
      ...(tx.to === undefined ? {} : { to: tx.to }),
      data: tx.data
    })
    senders.add(tx.from)
    return anvil.publicClient.sendRawTransaction({ serializedTransaction })
  }

  const apply = (receipt: TransactionReceipt, planned: Planned) => {
    if (planned.deploys !== undefined) {
      const deployed = { address: lower(receipt.contractAddress!), block: Number(receipt.blockNumber), name: planned.deploys.name, symbol: planned.deploys.symbol }
      if (planned.deploys.kind === "ERC20") erc20.push(deployed)
      else erc721 = deployed
      minters.set(deployed.address, [lower(deployer.address)])
      return
    }
    for (const log of receipt.logs) {
      const token = lower(log.address)
      if (token === erc721?.address) {
        for (const e of parseEventLogs({ abi: erc721PresetMinterPauserAutoIdAbi, logs: [log] })) {
          if (e.eventName === "Transfer") {
            if (e.args.to === zeroAddress) nftOwners.delete(e.args.tokenId)
            else nftOwners.set(e.args.tokenId, lower(e.args.to))
          } else if (e.eventName === "RoleGranted" && e.args.role === minterRole) minters.get(token)!.push(lower(e.args.account))
        }
        continue
      }
      for (const e of parseEventLogs({ abi: erc20PresetMinterPauserAbi, logs: [log] })) {
        if (e.eventName === "Transfer") {
          const { from, to, value } = e.args
          if (from !== zeroAddress) balances.set(`${token}-${lower(from)}`, (balances.get(`${token}-${lower(from)}`) ?? 0n) - value)
          if (to !== zeroAddress) balances.set(`${token}-${lower(to)}`, (balances.get(`${token}-${lower(to)}`) ?? 0n) + value)
        } else if (e.eventName === "Approval") {
          // OpenZeppelin 4.x emits Approval with the remaining allowance on transferFrom too: the last one is current.
          allowances.set(`${token}-${lower(e.args.owner)}-${lower(e.args.spender)}`, e.args.value)
        } else if (e.eventName === "RoleGranted" && e.args.role === minterRole) minters.get(token)!.push(lower(e.args.account))
      }
    }
  }

  /** Sends the block's transactions, mines one block and applies the receipts; every transaction must be in it and succeed. */
  const mineBlock = async (planned: ReadonlyArray<Planned>) => {
    const hashes: Array<Hash> = []
    for (const tx of planned) hashes.push(await send(tx))
    await anvil.testClient.mine({ blocks: 1 })
    const number = await head(anvil)
    const receipts = await Promise.all(hashes.map((hash) => anvil.publicClient.getTransactionReceipt({ hash })))
    for (const [i, receipt] of receipts.entries()) {
      if (receipt.status !== "success") throw new Error(`transaction ${hashes[i]} reverted in block ${receipt.blockNumber}`)
      if (Number(receipt.blockNumber) !== number) throw new Error(`transaction ${hashes[i]} went into block ${receipt.blockNumber}, not ${number}`)
      apply(receipt, planned[i]!)
    }
    transactions.push(...hashes)
    blockTransactions.set(number, hashes.length)
  }

  const deploy20 = (i: number): Planned => {
    const name = `Preset Token ${String.fromCharCode(65 + (i % 26))}${i >= 26 ? i : ""}`
    const symbol = `PT${String.fromCharCode(65 + (i % 26))}${i >= 26 ? i : ""}`
    return {
      from: lower(deployer.address),
      data: encodeDeployData({ abi: erc20PresetMinterPauserAbi, bytecode: erc20PresetMinterPauserBytecode, args: [name, symbol] }),
      gas: deployGas,
      deploys: { kind: "ERC20", name, symbol }
    }
  }
  const call = (from: Address, to: Address, abi: Abi, functionName: string, args: ReadonlyArray<unknown>): Planned => ({
    from,
    to,
    data: encodeFunctionData({ abi, functionName, args } as Parameters<typeof encodeFunctionData>[0]),
    gas: callGas
  })
  const amount = () => BigInt(rng.int(1, 1_000)) * 10n ** 18n + BigInt(rng.int(0, 999_999))
  const holder = () => rng.pick(holders)
  const erc20Call = (from: Address, token: Address, functionName: string, args: ReadonlyArray<unknown>) =>
    call(from, token, erc20PresetMinterPauserAbi, functionName, args)
  const erc721Call = (from: Address, functionName: string, args: ReadonlyArray<unknown>) =>
    call(from, erc721!.address, erc721PresetMinterPauserAutoIdAbi, functionName, args)
  const grantAndMint = (token: Address): Array<Planned> => [
    erc20Call(lower(deployer.address), token, "grantRole", [minterRole, holders[0]]),
    ...Array.from({ length: 3 }, () => erc20Call(lower(deployer.address), token, "mint", [holder(), amount()]))
  ]

  /** One block of random activity; what a sender may spend is its balance when the block began less what it spent in it. */
  const activity = (): Array<Planned> => {
    if (rng.next() < 0.15) return []
    const spent = new Map<string, bigint>()
    const available = (token: Address, owner: Address) => (balances.get(`${token}-${owner}`) ?? 0n) - (spent.get(`${token}-${owner}`) ?? 0n)
    const spend = (token: Address, owner: Address, value: bigint) => spent.set(`${token}-${owner}`, (spent.get(`${token}-${owner}`) ?? 0n) + value)
    const part = (of: bigint) => {
      const share = (of * BigInt(rng.int(1, 100))) / 100n
      return share === 0n ? of : share
    }
    const pairs = new Set<string>() // allowances approved or spent in this block
    const nfts = new Set<bigint>() // NFTs moved or burnt in this block
    const withBalance = (token: Address) => holders.filter((h) => available(token, h) > 0n)

    const nftMint = () => erc721Call(rng.pick(minters.get(erc721!.address)!), "mint", [holder()])
    const mint = () => {
      // Before any ERC20 is deployed (tokens: 1, ahead of the late one) only the NFT can be minted.
      if (erc20.length === 0) return nftMint()
      const token = rng.pick(erc20).address
      return erc20Call(rng.pick(minters.get(token)!), token, "mint", [holder(), amount()])
    }
    /** A call by a holder of a random token spending part of what it holds. */
    const spendOwn = (make: (from: Address, token: Address, value: bigint) => Planned): Planned | undefined => {
      const token = rng.pickOrUndefined(erc20)?.address
      if (token === undefined) return undefined
      const from = rng.pickOrUndefined(withBalance(token))
      if (from === undefined) return undefined
      const value = part(available(token, from))
      spend(token, from, value)
      return make(from, token, value)
    }
    const actions: ReadonlyArray<readonly [number, () => Planned | undefined]> = [
      [4, mint],
      [12, () => spendOwn((from, token, value) => erc20Call(from, token, "transfer", [holder(), value]))],
      [2, () => {
        const token = rng.pickOrUndefined(erc20)?.address
        if (token === undefined) return undefined
        const owner = holder()
        const spender = rng.pick(holders.filter((h) => h !== owner))
        if (pairs.has(`${token}-${owner}-${spender}`)) return undefined
        pairs.add(`${token}-${owner}-${spender}`)
        return erc20Call(owner, token, "approve", [spender, amount()])
      }],
      [4, () => {
        const token = rng.pickOrUndefined(erc20)?.address
        if (token === undefined) return undefined
        const candidates = [...allowances.entries()].filter(([key, allowance]) => {
          const [t, owner] = key.split("-") as [Address, Address]
          return t === token && allowance > 0n && !pairs.has(key) && available(token, owner) > 0n
        })
        const chosen = rng.pickOrUndefined(candidates)
        if (chosen === undefined) return undefined
        const [key, allowance] = chosen
        const [, owner, spender] = key.split("-") as [Address, Address, Address]
        pairs.add(key)
        const value = part(available(token, owner) < allowance ? available(token, owner) : allowance)
        spend(token, owner, value)
        return erc20Call(spender, token, "transferFrom", [owner, holder(), value])
      }],
      [2, () => spendOwn((from, token, value) => erc20Call(from, token, "burn", [value]))],
      [2, nftMint],
      [4, () => {
        const owned = rng.pickOrUndefined([...nftOwners.keys()].filter((id) => !nfts.has(id)))
        if (owned === undefined) return undefined
        nfts.add(owned)
        const owner = nftOwners.get(owned)!
        return erc721Call(owner, "transferFrom", [owner, rng.pick(holders.filter((h) => h !== owner)), owned])
      }],
      [1, () => {
        const owned = rng.pickOrUndefined([...nftOwners.keys()].filter((id) => !nfts.has(id)))
        if (owned === undefined) return undefined
        nfts.add(owned)
        return erc721Call(nftOwners.get(owned)!, "burn", [owned])
      }]
    ]
    const total = actions.reduce((sum, [weight]) => sum + weight, 0)
    const planned: Array<Planned> = []
    for (let n = rng.int(1, 6); planned.length < n;) {
      let r = rng.int(0, total - 1)
      const [, action] = actions.find(([weight]) => (r -= weight) < 0)!
      // An action with nothing to act on falls back to a mint, which is always possible.
      planned.push(action() ?? mint())
    }
    return planned
  }

  const lateBlock = Math.floor(blockCount / 3)
  await anvil.testClient.setAutomine(false)
  try {
    for (let i = 0; i < blockCount; i++) {
      if (i === 0) {
        await mineBlock([
          ...Array.from({ length: tokenCount - 1 }, (_, t) => deploy20(t)),
          {
            from: lower(deployer.address),
            data: encodeDeployData({
              abi: erc721PresetMinterPauserAutoIdAbi,
              bytecode: erc721PresetMinterPauserAutoIdBytecode,
              args: ["Preset Collectible", "PNFT", "https://example.invalid/pnft/"]
            }),
            gas: deployGas,
            deploys: { kind: "ERC721", name: "Preset Collectible", symbol: "PNFT" }
          }
        ])
      } else if (i === 1) {
        await mineBlock([
          ...erc20.flatMap((t) => grantAndMint(t.address)),
          erc721Call(lower(deployer.address), "grantRole", [minterRole, holders[0]]),
          erc721Call(lower(deployer.address), "mint", [holder()])
        ])
      } else if (i === lateBlock) {
        await mineBlock([deploy20(tokenCount - 1)])
      } else if (i === lateBlock + 1) {
        await mineBlock(grantAndMint(erc20[tokenCount - 1]!.address))
      } else {
        await mineBlock(activity())
      }
    }
  } finally {
    await anvil.testClient.setAutomine(true)
  }

  return {
    multicall3,
    erc20,
    erc721: erc721!,
    fromBlock: multicall3.block,
    toBlock: await head(anvil),
    holders,
    senders: [...senders],
    transactions,
    blockTransactions
  }
}

/** balanceOf of each holder (ERC20 or ERC721) at `block` (default: the head), keyed by the lowercase holder. */
export const balancesOf = async (anvil: Anvil, token: Address, holders: ReadonlyArray<Address>, block?: number): Promise<Map<Address, bigint>> => {
  const at = block === undefined ? {} : { blockNumber: BigInt(block) }
  const values = await Promise.all(
    holders.map((owner) => anvil.publicClient.readContract({ address: token, abi: erc20PresetMinterPauserAbi, functionName: "balanceOf", args: [owner], ...at }))
  )
  return new Map(holders.map((owner, i) => [lower(owner), values[i]!]))
}

/** totalSupply() by eth_call at that block (both presets have it; the ERC721's counts tokens not burnt). */
export const totalSupplyAt = (anvil: Anvil, token: Address, block: number): Promise<bigint> =>
  anvil.publicClient.readContract({ address: token, abi: erc20PresetMinterPauserAbi, functionName: "totalSupply", blockNumber: BigInt(block) })

/** A Transfer log, ERC20 (3 topics, value in data) or ERC721 (4 topics, tokenId the last); addresses lowercase. */
export type TransferLog =
  & {
    readonly address: Address
    readonly blockNumber: number
    readonly blockHash: Hash
    readonly logIndex: number
    readonly transactionHash: Hash
    readonly transactionIndex: number
    readonly from: Address
    readonly to: Address
    readonly topics: ReadonlyArray<Hex>
    readonly data: Hex
  }
  & ({ readonly standard: "ERC20"; readonly value: bigint } | { readonly standard: "ERC721"; readonly tokenId: bigint })

const transferEvent = erc20PresetMinterPauserAbi.find((item) => item.type === "event" && item.name === "Transfer")! as Extract<
  (typeof erc20PresetMinterPauserAbi)[number],
  { readonly type: "event"; readonly name: "Transfer" }
>

/**
 * Transfer logs by eth_getLogs (viem getLogs) in fromBlock..toBlock, of `address` or of every contract when it is
 * omitted (wildcard); `args` filters on the indexed from/to (in the query's topics: ERC20 and ERC721 index both the
 * same way). Ordered by block and log index.
 */
export const transferLogs = async (
  anvil: Anvil,
  options: {
    readonly address?: Address | ReadonlyArray<Address>
    readonly fromBlock: number
    readonly toBlock: number
    readonly args?: { readonly from?: Address | ReadonlyArray<Address>; readonly to?: Address | ReadonlyArray<Address> }
  }
): Promise<Array<TransferLog>> => {
  const args = {
    ...(options.args?.from === undefined ? {} : { from: typeof options.args.from === "string" ? options.args.from : [...options.args.from] }),
    ...(options.args?.to === undefined ? {} : { to: typeof options.args.to === "string" ? options.args.to : [...options.args.to] })
  }
  // Not strict: the ERC20-shaped event (value not indexed) does not decode an ERC721 log, which is kept and decoded below.
  const logs = await anvil.publicClient.getLogs({
    event: transferEvent,
    args,
    fromBlock: BigInt(options.fromBlock),
    toBlock: BigInt(options.toBlock),
    strict: false,
    ...(options.address === undefined ? {} : { address: typeof options.address === "string" ? options.address : [...options.address] })
  })
  return logs.map((log): TransferLog => {
    const topics: ReadonlyArray<Hex> = log.topics
    const [, from, to, tokenId] = topics
    const common = {
      address: lower(log.address),
      blockNumber: Number(log.blockNumber),
      blockHash: log.blockHash,
      logIndex: log.logIndex,
      transactionHash: log.transactionHash,
      transactionIndex: log.transactionIndex,
      from: lower(slice(from!, 12)),
      to: lower(slice(to!, 12)),
      topics,
      data: log.data
    }
    return tokenId === undefined
      ? { ...common, standard: "ERC20", value: hexToBigInt(log.data) }
      : { ...common, standard: "ERC721", tokenId: hexToBigInt(tokenId) }
  })
}

/** The transaction's sender (the receipt's `from`), lowercase. */
export const senderOf = async (anvil: Anvil, hash: Hash): Promise<Address> => lower((await anvil.publicClient.getTransactionReceipt({ hash })).from)

const lower = (address: string): Address => address.toLowerCase() as Address

/** mulberry32: a small seeded generator, the same sequence for the same seed. */
const random = (seed: number) => {
  let state = seed >>> 0
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
  }
  /** An integer in min..max, both included. */
  const int = (min: number, max: number) => min + Math.floor(next() * (max - min + 1))
  const pickOrUndefined = <A>(items: ReadonlyArray<A>): A | undefined => (items.length === 0 ? undefined : items[int(0, items.length - 1)])
  const pick = <A>(items: ReadonlyArray<A>): A => {
    const item = pickOrUndefined(items)
    if (item === undefined) throw new Error("pick from an empty list")
    return item
  }
  return { next, int, pick, pickOrUndefined }
}
