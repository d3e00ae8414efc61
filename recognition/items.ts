/**
 * The bureau's per-item table (validity window, price), read by the recognition engine and by supervision's
 * duplicate-test rule (`recognitionWindows`), edited with two operations:
 *
 *   GET  [base]/$recognition-items                    every item (any authenticated caller)
 *   POST [base]/$recognition-item-set                 Parameters: system, code, windowDays, price?, display?
 *                                                     (admin and supervisor: the health bureau)
 *
 * A table of the module rather than FHIR resources: the figures join decisions with prices in SQL, and the bureau's
 * supervisors, who write no FHIR resources, edit it. Every call is audited like any FHIR request.
 */
import type { Parameters, ParametersParameter } from '@medplum/fhirtypes';
import { badRequest, FhirError, issue, operationParameters, outcome, parameterValue, type FhirOperation, type FhirRepository, type Queryable } from '../fhir-server';
import { BASE } from './fhir';

export interface RecognitionItem {
  system: string;
  code: string;
  display?: string;
  windowDays: number;
  price?: number;
}

interface ItemRow {
  system: string;
  code: string;
  display: string | null;
  window_days: number;
  price: string | null;
}

/** How long a read of the table is reused; an edit is seen by every process within this. */
const CACHE_MS = 5_000;

export class ItemTable {
  private cached: { at: number; items: Map<string, RecognitionItem> } | undefined;

  constructor(private readonly db: Queryable) {}

  async all(): Promise<Map<string, RecognitionItem>> {
    if (this.cached && Date.now() - this.cached.at < CACHE_MS) {
      return this.cached.items;
    }
    const rows = await this.db.query<ItemRow>('SELECT system, code, display, window_days, price FROM recognition_item ORDER BY system, code');
    const items = new Map(rows.map((r) => [`${r.system}|${r.code}`, { system: r.system, code: r.code, display: r.display ?? undefined, windowDays: r.window_days, price: r.price === null ? undefined : Number(r.price) }]));
    this.cached = { at: Date.now(), items };
    return items;
  }

  async get(system: string, code: string): Promise<RecognitionItem | undefined> {
    return (await this.all()).get(`${system}|${code}`);
  }

  async set(item: RecognitionItem, by: string): Promise<void> {
    await this.db.query(
      `INSERT INTO recognition_item (system, code, display, window_days, price, updated_at, updated_by) VALUES ($1, $2, $3, $4, $5, now(), $6)
       ON CONFLICT (system, code) DO UPDATE SET display = COALESCE(EXCLUDED.display, recognition_item.display), window_days = EXCLUDED.window_days,
         price = EXCLUDED.price, updated_at = now(), updated_by = EXCLUDED.updated_by`,
      [item.system, item.code, item.display ?? null, item.windowDays, item.price ?? null, by],
    );
    this.cached = undefined;
  }
}

const tables = new WeakMap<object, ItemTable>();

/** One table reader per database, so that its cache is shared by the engine, the operations and other modules. */
export function itemTable(db: Queryable): ItemTable {
  let table = tables.get(db);
  if (!table) {
    table = new ItemTable(db);
    tables.set(db, table);
  }
  return table;
}

/**
 * The validity windows, for other modules (supervision's duplicate-test rule): days a result of this code stays
 * recognisable, undefined for an item the bureau lists no window for (not recognised mutually).
 */
export function recognitionWindows(repository: FhirRepository): { windowDays(system: string, code: string): Promise<number | undefined> } {
  const table = itemTable(repository.db);
  return { windowDays: async (system, code) => (await table.get(system, code))?.windowDays };
}

function itemParameter(item: RecognitionItem): ParametersParameter {
  return {
    name: 'item',
    part: [
      { name: 'system', valueUri: item.system },
      { name: 'code', valueCode: item.code },
      ...(item.display ? [{ name: 'display', valueString: item.display }] : []),
      { name: 'windowDays', valueInteger: item.windowDays },
      ...(item.price !== undefined ? [{ name: 'price', valueMoney: { value: item.price, currency: 'CNY' as const } }] : []),
    ],
  };
}

export function itemOperations(db: Queryable): FhirOperation[] {
  const table = itemTable(db);
  return [
    {
      name: 'recognition-items',
      definition: `${BASE}/OperationDefinition/recognition-items`,
      levels: ['system'],
      affectsState: false,
      async invoke() {
        const body: Parameters = { resourceType: 'Parameters', parameter: [...(await table.all()).values()].map(itemParameter) };
        return { status: 200, body };
      },
    },
    {
      name: 'recognition-item-set',
      definition: `${BASE}/OperationDefinition/recognition-item-set`,
      levels: ['system'],
      roles: ['admin', 'supervisor'],
      // It changes the module's table, not FHIR resources; declared as not affecting state so that the bureau's
      // supervisors (who may write no FHIR resource) can call it. GET is refused below all the same.
      affectsState: false,
      async invoke(ctx, request) {
        if (request.method !== 'POST') {
          throw new FhirError(405, outcome([issue('error', 'not-supported', '$recognition-item-set changes the item table: use POST with a Parameters body')]));
        }
        const p = operationParameters(request);
        const system = parameterValue(p, 'system') ?? 'http://loinc.org';
        const code = parameterValue(p, 'code');
        const days = Number(parameterValue(p, 'windowDays'));
        const priceParam = p.parameter?.find((x) => x.name === 'price');
        const price = priceParam?.valueMoney?.value ?? priceParam?.valueDecimal ?? (priceParam?.valueString !== undefined ? Number(priceParam.valueString) : undefined);
        const display = parameterValue(p, 'display');
        if (!code || code.length > 64 || system.length > 200) {
          throw badRequest('Parameter "code" is required (at most 64 characters), with "system" (default http://loinc.org, at most 200)');
        }
        if (!Number.isInteger(days) || days < 1 || days > 3650) {
          throw badRequest(`Parameter "windowDays" must be a whole number of days from 1 to 3650, got "${parameterValue(p, 'windowDays') ?? ''}"`);
        }
        if (price !== undefined && (!Number.isFinite(price) || price < 0 || price >= 1e8)) {
          throw badRequest(`Parameter "price" must be a non-negative amount in yuan, got "${String(price)}"`);
        }
        if (display && display.length > 200) {
          throw badRequest('Parameter "display" is at most 200 characters');
        }
        const caller = ctx.caller;
        await table.set({ system, code, display, windowDays: days, price }, caller?.clientId ?? 'platform');
        const item = await table.get(system, code);
        return { status: 200, body: { resourceType: 'Parameters', parameter: item ? [itemParameter(item)] : [] } as Parameters };
      },
    },
  ];
}
