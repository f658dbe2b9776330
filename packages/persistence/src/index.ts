export * as Columns from "./Columns.js"
export * as Embedded from "./Embedded.js"
export * as PgStorage from "./PgStorage.js"
export * as Tables from "./Tables.js"
