/**
 * Fields: what a handler may select of an event's block, transaction (with its receipt) and raw log beyond the
 * defaults, their types, and how each is read from a JSON-RPC object. `event.block`, `event.transaction` and
 * `event.log` carry exactly the defaults plus what was selected; the types follow the selection.
 */
import type { Hex } from "viem"

/** Block fields every event and block handler gets without selecting them. */
export interface BlockDefaults {
  readonly number: number
  readonly hash: Hex
  readonly timestamp: number
}

/** Selectable block fields, as `eth_getBlockByNumber` names them; quantities as bigint, addresses lowercase. */
export interface BlockSelectable {
  readonly parentHash: Hex
  readonly nonce: Hex
  readonly sha3Uncles: Hex
  readonly logsBloom: Hex
  readonly transactionsRoot: Hex
  readonly stateRoot: Hex
  readonly receiptsRoot: Hex
  readonly miner: string
  readonly difficulty: bigint
  readonly extraData: Hex
  readonly size: bigint
  readonly gasLimit: bigint
  readonly gasUsed: bigint
  /** null before London (EIP-1559). */
  readonly baseFeePerGas: bigint | null
  readonly mixHash: Hex
}

/** Transaction fields every event gets. */
export interface TransactionDefaults {
  readonly hash: Hex
}

/** Selectable fields of the transaction (`eth_getTransactionByHash`): addresses lowercase, quantities bigint. */
export interface TransactionSelectable {
  readonly from: string
  /** null for a contract creation. */
  readonly to: string | null
  readonly value: bigint
  readonly input: Hex
  /** Position in its block; from the log itself, no extra call. */
  readonly index: number
  readonly gas: bigint
  /** null where the chain's transaction type has none. */
  readonly gasPrice: bigint | null
  readonly maxFeePerGas: bigint | null
  readonly maxPriorityFeePerGas: bigint | null
  readonly nonce: number
  /** EIP-2718 type: 0 legacy, 1 access list, 2 EIP-1559, 3 blob, 4 set code. */
  readonly type: number
}

/** Selectable fields of the transaction's receipt (`eth_getTransactionReceipt`). */
export interface ReceiptSelectable {
  readonly status: "success" | "reverted"
  readonly gasUsed: bigint
  readonly cumulativeGasUsed: bigint
  readonly effectiveGasPrice: bigint
  /** The created contract of a creation transaction, else null. */
  readonly contractAddress: string | null
}

/** The raw log: its topics and data as the chain gave them. */
export interface LogSelectable {
  readonly topics: ReadonlyArray<Hex>
  readonly data: Hex
}

export type BlockField = keyof BlockSelectable
export type TransactionField = keyof TransactionSelectable | keyof ReceiptSelectable
export type LogField = keyof LogSelectable

/** What a contract, one of its events, or a block handler selects. */
export interface Selection {
  readonly block?: ReadonlyArray<BlockField>
  readonly transaction?: ReadonlyArray<TransactionField>
  readonly log?: ReadonlyArray<LogField>
}

/** A selection as the runtime reads it: each list deduplicated, empty when nothing is selected. */
export interface Selected {
  readonly block: ReadonlyArray<BlockField>
  readonly transaction: ReadonlyArray<TransactionField>
  readonly log: ReadonlyArray<LogField>
}

type TransactionAll = TransactionSelectable & ReceiptSelectable

/** `event.block` for a selection of block fields. */
export type BlockOf<F> = BlockDefaults & Pick<BlockSelectable, F & BlockField>
/** `event.transaction` for a selection of transaction fields. */
export type TransactionOf<F> = TransactionDefaults & Pick<TransactionAll, F & TransactionField>
/** `event.log` for a selection of log fields. */
export type LogOf<F> = Pick<LogSelectable, F & LogField>

/** The field names a selection type lists under `key`. */
export type Listed<S, K extends keyof Selection> = S extends { readonly [P in K]?: infer L } ? L extends ReadonlyArray<infer F> ? F : never : never

export const blockFields: ReadonlyArray<BlockField> = [
  "parentHash", "nonce", "sha3Uncles", "logsBloom", "transactionsRoot", "stateRoot", "receiptsRoot", "miner",
  "difficulty", "extraData", "size", "gasLimit", "gasUsed", "baseFeePerGas", "mixHash"
]
export const transactionFields: ReadonlyArray<keyof TransactionSelectable> = [
  "from", "to", "value", "input", "index", "gas", "gasPrice", "maxFeePerGas", "maxPriorityFeePerGas", "nonce", "type"
]
export const receiptFields: ReadonlyArray<keyof ReceiptSelectable> = ["status", "gasUsed", "cumulativeGasUsed", "effectiveGasPrice", "contractAddress"]
export const logFields: ReadonlyArray<LogField> = ["topics", "data"]

export const none: Selected = { block: [], transaction: [], log: [] }

/** The union of selections, each list in catalogue order. */
export const union = (selections: ReadonlyArray<Selection | undefined>): Selected => {
  const pick = <F extends string>(all: ReadonlyArray<F>, lists: ReadonlyArray<ReadonlyArray<F> | undefined>): ReadonlyArray<F> => {
    const wanted = new Set<F>()
    for (const list of lists) for (const f of list ?? []) wanted.add(f)
    return all.filter((f) => wanted.has(f))
  }
  return {
    block: pick(blockFields, selections.map((s) => s?.block)),
    transaction: pick([...transactionFields, ...receiptFields] as ReadonlyArray<TransactionField>, selections.map((s) => s?.transaction)),
    log: pick(logFields, selections.map((s) => s?.log))
  }
}

export const isEmpty = (selected: Selected): boolean =>
  selected.block.length === 0 && selected.transaction.length === 0 && selected.log.length === 0

/** Whether the transaction fields need the transaction object (`index` comes from the log). */
export const needsTransaction = (fields: ReadonlyArray<TransactionField>): boolean =>
  fields.some((f) => f !== "index" && (transactionFields as ReadonlyArray<string>).includes(f))

export const needsReceipt = (fields: ReadonlyArray<TransactionField>): boolean =>
  fields.some((f) => (receiptFields as ReadonlyArray<string>).includes(f))

/** A problem with a selection (unknown field, not a list), for the definition's validation; undefined when fine. */
export const check = (selection: unknown): string | undefined => {
  if (selection === undefined) return undefined
  if (typeof selection !== "object" || selection === null) return "must be an object with block, transaction and log lists"
  for (const [key, list] of Object.entries(selection)) {
    const known: ReadonlyArray<string> | undefined = key === "block" ? blockFields :
      key === "transaction" ? [...transactionFields, ...receiptFields] : key === "log" ? logFields : undefined
    if (known === undefined) return `has no "${key}" (only block, transaction and log)`
    if (!Array.isArray(list)) return `.${key} must be a list of field names`
    for (const field of list) {
      if (!known.includes(field)) {
        const defaults = key === "block" ? ["number", "hash", "timestamp"] : key === "transaction" ? ["hash"] : []
        return defaults.includes(field) ?
          `.${key}: "${String(field)}" is always there, do not select it` :
          `.${key}: "${String(field)}" is not a ${key} field (one of: ${known.join(", ")})`
      }
    }
  }
  return undefined
}

// ---------------------------------------------------------------------------------------------------------------
// Reading fields from JSON-RPC objects

/** A field a JSON-RPC object lacked or gave in a form that is not its type: the object must be fetched again. */
export class MissingField {
  readonly _tag = "MissingField"
  constructor(readonly object: "block" | "transaction" | "receipt", readonly field: string, readonly value: unknown) {}
  get message(): string {
    return `the ${this.object}'s ${this.field} is ${this.value === undefined ? "missing" : `not valid (${JSON.stringify(this.value)})`}`
  }
}

type Raw = Readonly<Record<string, unknown>>

const isHex = (v: unknown): v is Hex => typeof v === "string" && /^0x[0-9a-fA-F]*$/.test(v)

type Reader = (raw: Raw, key: string) => unknown | MissingField

const hexData = (object: MissingField["object"]): Reader => (raw, key) => (isHex(raw[key]) ? (raw[key] as Hex).toLowerCase() : new MissingField(object, key, raw[key]))
const quantity = (object: MissingField["object"]): Reader => (raw, key) => (isHex(raw[key]) && raw[key] !== "0x" ? BigInt(raw[key] as Hex) : new MissingField(object, key, raw[key]))
const optionalQuantity = (object: MissingField["object"]): Reader => (raw, key) => (raw[key] === undefined || raw[key] === null ? null : quantity(object)(raw, key))
const smallQuantity = (object: MissingField["object"]): Reader => (raw, key) => {
  const v = quantity(object)(raw, key)
  return typeof v === "bigint" ? Number(v) : v
}
const address = (object: MissingField["object"]): Reader => (raw, key) =>
  typeof raw[key] === "string" && /^0x[0-9a-fA-F]{40}$/.test(raw[key] as string) ? (raw[key] as string).toLowerCase() : new MissingField(object, key, raw[key])
const optionalAddress = (object: MissingField["object"]): Reader => (raw, key) => (raw[key] === undefined || raw[key] === null ? null : address(object)(raw, key))

const blockReaders: Readonly<Record<BlockField, Reader>> = {
  parentHash: hexData("block"),
  nonce: hexData("block"),
  sha3Uncles: hexData("block"),
  logsBloom: hexData("block"),
  transactionsRoot: hexData("block"),
  stateRoot: hexData("block"),
  receiptsRoot: hexData("block"),
  miner: address("block"),
  difficulty: quantity("block"),
  extraData: hexData("block"),
  size: quantity("block"),
  gasLimit: quantity("block"),
  gasUsed: quantity("block"),
  baseFeePerGas: optionalQuantity("block"),
  mixHash: hexData("block")
}

const transactionReaders: Readonly<Record<Exclude<keyof TransactionSelectable, "index">, Reader>> = {
  from: address("transaction"),
  to: optionalAddress("transaction"),
  value: quantity("transaction"),
  input: hexData("transaction"),
  gas: quantity("transaction"),
  gasPrice: optionalQuantity("transaction"),
  maxFeePerGas: optionalQuantity("transaction"),
  maxPriorityFeePerGas: optionalQuantity("transaction"),
  nonce: smallQuantity("transaction"),
  type: (raw, key) => (raw[key] === undefined ? 0 : smallQuantity("transaction")(raw, key))
}

const receiptReaders: Readonly<Record<keyof ReceiptSelectable, Reader>> = {
  status: (raw, key) => (raw[key] === "0x1" ? "success" : raw[key] === "0x0" ? "reverted" : new MissingField("receipt", key, raw[key])),
  gasUsed: quantity("receipt"),
  cumulativeGasUsed: quantity("receipt"),
  effectiveGasPrice: quantity("receipt"),
  contractAddress: optionalAddress("receipt")
}

const readInto = (out: Record<string, unknown>, raw: Raw, fields: ReadonlyArray<string>, readers: Readonly<Record<string, Reader>>): MissingField | undefined => {
  for (const field of fields) {
    const read = readers[field]
    if (read === undefined) continue
    const value = read(raw, field)
    if (value instanceof MissingField) return value
    out[field] = value
  }
  return undefined
}

/** `event.block` from a JSON-RPC block and the selected fields. */
export const blockFromRpc = (raw: Raw, fields: ReadonlyArray<BlockField>): Readonly<Record<string, unknown>> | MissingField => {
  const number = smallQuantity("block")(raw, "number")
  if (number instanceof MissingField) return number
  const hash = hexData("block")(raw, "hash")
  if (hash instanceof MissingField) return hash
  const timestamp = smallQuantity("block")(raw, "timestamp")
  if (timestamp instanceof MissingField) return timestamp
  const out: Record<string, unknown> = { number, hash, timestamp }
  return readInto(out, raw, fields, blockReaders) ?? out
}

/**
 * `event.transaction` from the log's hash and index and, when the selection needs them, the JSON-RPC transaction
 * and receipt.
 */
export const transactionFromRpc = (
  hash: Hex,
  index: number,
  fields: ReadonlyArray<TransactionField>,
  transaction: Raw | undefined,
  receipt: Raw | undefined
): Readonly<Record<string, unknown>> | MissingField => {
  const out: Record<string, unknown> = { hash }
  if (fields.includes("index")) out.index = index
  if (transaction !== undefined) {
    const missing = readInto(out, transaction, fields, transactionReaders)
    if (missing !== undefined) return missing
  }
  if (receipt !== undefined) {
    const missing = readInto(out, receipt, fields, receiptReaders)
    if (missing !== undefined) return missing
  }
  return out
}
