/**
 * Starts the Huimin platform: database (PostgreSQL or embedded PGlite), schema migrations, the FHIR API and the
 * event relay.
 */
import { mkdirSync } from 'node:fs';
import pino from 'pino';
import { loadConfig } from './config';
import { createFhirServer, migrate, openDatabase } from './fhir-server';

async function main(): Promise<void> {
  const config = loadConfig();
  const logger = pino({ level: config.logLevel });
  if (!config.databaseUrl) {
    mkdirSync(config.dataDir, { recursive: true });
  }
  const db = await openDatabase(config.databaseUrl, config.dataDir);
  const applied = await migrate(db);
  logger.info({ storage: db.description, migrationsApplied: applied }, `storage: ${db.description}`);
  const server = createFhirServer({ ...config, db, logger });
  const listener = server.app.listen(config.port, config.host, () => {
    logger.info(`Huimin FHIR R4 API listening on http://${config.host}:${config.port}${config.fhirBasePath} (storage: ${db.description})`);
  });
  listener.keepAliveTimeout = 65_000;

  const shutdown = async (signal: string): Promise<void> => {
    logger.info(`${signal} received: shutting down`);
    listener.close();
    await server.stop();
    await db.close();
    process.exit(0);
  };
  process.once('SIGINT', () => void shutdown('SIGINT'));
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
}

main().catch((err: unknown) => {
  console.error('Huimin failed to start:', err);
  process.exit(1);
});
