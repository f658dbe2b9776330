/**
 * Redact: strips secrets (passwords in connection URLs, keys in RPC URLs) from any text before it is shown.
 */

/** `scheme://user:password@host` → `scheme://user:***@host`; `?key=…`/`apikey=…`/`token=…` values → `***`. */
export const redact = (text: string): string =>
  text
    .replace(/([a-z][a-z0-9+.-]*:\/\/[^\s:/@]*):[^\s@/]*@/gi, "$1:***@")
    .replace(/([?&](?:api[_-]?key|key|token|access[_-]?token|password)=)[^&\s]+/gi, "$1***")
