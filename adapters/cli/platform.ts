/**
 * What the adapter commands run on: the configured database (migrated), the store and the adapters, in this
 * process. With embedded PGlite (no DATABASE_URL) the platform must not be running at the same time: PGlite is
 * one process's database.
 */
import { mkdirSync } from 'node:fs';
import pino from 'pino';
import { loadConfig } from '../../config';
import { createFhirServer, migrate, openDatabase, type FhirServer, type Database } from '../../fhir-server';
import { adapterMigrations } from '../store/migrations';
import { createAdapters, type Adapters } from '../runtime';

export interface CommandPlatform {
  db: Database;
  server: FhirServer;
  adapters: Adapters;
  close(): Promise<void>;
}

export async function openCommandPlatform(): Promise<CommandPlatform> {
  const config = loadConfig();
  const logger = pino({ level: config.logLevel === 'info' ? 'warn' : config.logLevel });
  if (!config.databaseUrl) mkdirSync(config.dataDir, { recursive: true });
  const db = await openDatabase(config.databaseUrl, config.dataDir, 4);
  await migrate(db, adapterMigrations);
  const server = createFhirServer({ ...config, db, logger });
  const adapters = createAdapters({ repo: server.repository, logger, nationalIdAliases: config.hl7.nationalIdAliases });
  return {
    db,
    server,
    adapters,
    close: async () => {
      // Let the relay hand the last change events to Redis before stopping.
      await new Promise((r) => setTimeout(r, 500));
      await server.stop();
      await db.close();
    },
  };
}
