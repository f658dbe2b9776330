/**
 * LogPayload: the stored form of one cached range's logs (pure), what PgChainCache compresses into a range's payload.
 * Only the fields a log has in RpcClient.Log are kept, each as the node gave it: block fields once per run of logs of
 * one block, transaction fields once per run of one transaction, addresses and first topics once per range (a
 * dictionary); so encoding is one pass over the logs and one JSON text, and decoding makes one object per log,
 * sharing the repeated strings. Decoding can skip the blocks outside a span without making their logs.
 */
import type { RpcClient } from "@chainstore/core"

/** The layout's version, first in every payload: another one is not read. */
export const version = 1

type Hex = RpcClient.Log["data"]

/**
 * UTF-8 JSON of `[version, dictionary, blocks, transactions, rows]`, flat arrays:
 * - blocks: per run of logs of one block, `blockNumber, blockHash, blockTimestamp (0: none), logCount`;
 * - transactions: per run of logs of one transaction, `transactionHash, transactionIndex, logCount`;
 * - rows: per log, `logIndex, address (dictionary index), topicCount, [first topic (dictionary index), other topics],
 *   data, removed (0: false, 1: true, 2: none)`.
 */
export const encode = (logs: ReadonlyArray<RpcClient.Log>): Uint8Array => {
  const dictionary: Array<string> = []
  const indexes = new Map<string, number>()
  const indexOf = (value: string): number => {
    let index = indexes.get(value)
    if (index === undefined) {
      index = dictionary.length
      dictionary.push(value)
      indexes.set(value, index)
    }
    return index
  }
  const blocks: Array<string | number> = []
  const transactions: Array<string | number> = []
  const rows: Array<string | number> = []
  let blockNumber = ""
  let blockHash = ""
  let blockTimestamp: string | 0 = 0
  let blockLogs = 0
  let transactionHash = ""
  let transactionIndex = ""
  let transactionLogs = 0
  // The last address and first topic seen, and their indexes: runs of one contract's one event skip the lookup.
  let address: string | undefined
  let addressIndex = 0
  let selector: string | undefined
  let selectorIndex = 0
  for (const log of logs) {
    const timestamp = log.blockTimestamp ?? 0
    if (blockLogs === 0 || log.blockNumber !== blockNumber || log.blockHash !== blockHash || timestamp !== blockTimestamp) {
      if (blockLogs > 0) blocks.push(blockNumber, blockHash, blockTimestamp, blockLogs)
      if (transactionLogs > 0) transactions.push(transactionHash, transactionIndex, transactionLogs)
      blockNumber = log.blockNumber
      blockHash = log.blockHash
      blockTimestamp = timestamp
      blockLogs = 0
      transactionLogs = 0
    }
    if (transactionLogs === 0 || log.transactionHash !== transactionHash || log.transactionIndex !== transactionIndex) {
      if (transactionLogs > 0) transactions.push(transactionHash, transactionIndex, transactionLogs)
      transactionHash = log.transactionHash
      transactionIndex = log.transactionIndex
      transactionLogs = 0
    }
    blockLogs++
    transactionLogs++
    if (log.address !== address) {
      address = log.address
      addressIndex = indexOf(address)
    }
    const topics = log.topics
    rows.push(log.logIndex, addressIndex, topics.length)
    if (topics.length > 0) {
      if (topics[0] !== selector) {
        selector = topics[0]!
        selectorIndex = indexOf(selector)
      }
      rows.push(selectorIndex)
      for (let i = 1; i < topics.length; i++) rows.push(topics[i]!)
    }
    rows.push(log.data, log.removed === undefined ? 2 : log.removed ? 1 : 0)
  }
  if (blockLogs > 0) blocks.push(blockNumber, blockHash, blockTimestamp, blockLogs)
  if (transactionLogs > 0) transactions.push(transactionHash, transactionIndex, transactionLogs)
  return Buffer.from(JSON.stringify([version, dictionary, blocks, transactions, rows]), "utf8")
}

/** The logs of `payload` in blocks fromBlock..toBlock, in stored order; throws on a payload of another layout. */
export const decode = (payload: Uint8Array, fromBlock: number, toBlock: number): Array<RpcClient.Log> => {
  const parsed: unknown = JSON.parse(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString("utf8"))
  if (!Array.isArray(parsed) || parsed[0] !== version || parsed.length !== 5 || !parsed.slice(1).every(Array.isArray)) {
    throw new Error(`not a version ${version} log payload`)
  }
  const [, dictionary, blocks, transactions, rows] = parsed as [number, Array<string>, Array<string | number>, Array<string | number>, Array<string | number>]
  let row = 0
  const logs: Array<RpcClient.Log> = []
  let transaction = 0
  let transactionLogs = 0
  let transactionHash = "" as RpcClient.Log["transactionHash"]
  let transactionIndex = "" as RpcClient.Log["transactionIndex"]
  for (let block = 0; block < blocks.length; block += 4) {
    const blockNumber = blocks[block] as RpcClient.Log["blockNumber"]
    const n = Number(blockNumber)
    // Blocks are in order: none after this one is wanted.
    if (n > toBlock) break
    const blockHash = blocks[block + 1] as RpcClient.Log["blockHash"]
    const blockTimestamp = blocks[block + 2] as Hex | 0
    const count = blocks[block + 3] as number
    const wanted = n >= fromBlock
    for (let i = 0; i < count; i++) {
      if (transactionLogs === 0) {
        transactionHash = transactions[transaction] as RpcClient.Log["transactionHash"]
        transactionIndex = transactions[transaction + 1] as RpcClient.Log["transactionIndex"]
        transactionLogs = transactions[transaction + 2] as number
        transaction += 3
      }
      transactionLogs--
      const logIndex = rows[row] as RpcClient.Log["logIndex"]
      const address = dictionary[rows[row + 1] as number]!
      const topicCount = rows[row + 2] as number
      row += 3
      if (!wanted) {
        row += topicCount + 2
        continue
      }
      const topics = new Array<Hex>(topicCount)
      if (topicCount > 0) {
        topics[0] = dictionary[rows[row++] as number] as Hex
        for (let t = 1; t < topicCount; t++) topics[t] = rows[row++] as Hex
      }
      const data = rows[row] as Hex
      const removed = rows[row + 1]
      row += 2
      const log: { -readonly [K in keyof RpcClient.Log]: RpcClient.Log[K] } = blockTimestamp === 0
        ? { address, topics, data, blockNumber, blockHash, logIndex, transactionHash, transactionIndex }
        : { address, topics, data, blockNumber, blockHash, blockTimestamp, logIndex, transactionHash, transactionIndex }
      if (removed !== 2) log.removed = removed === 1
      logs.push(log)
    }
  }
  if (row > rows.length) throw new Error("a log payload of inconsistent lengths")
  return logs
}
