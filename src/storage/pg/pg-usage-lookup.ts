import { USAGE_ROW_SELECT, usageRowView, type UsageLookup, type UsageRowRaw } from "../usage-lookup.js";
import type { SyncPg } from "./sync-pg.js";

/** Usage rows by request id on PostgreSQL (the usage_request_id index), as storage/usage-lookup.ts on SQLite. */
export function createPgUsageLookup(pg: SyncPg): UsageLookup {
  return {
    byRequestId: (requestId) => pg.query<UsageRowRaw>(`${USAGE_ROW_SELECT} WHERE u.request_id = $1 ORDER BY u.ts, u.id`, [requestId]).map(usageRowView),
  };
}
