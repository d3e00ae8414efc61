/**
 * Builds the portal's pages into dist/portal-web, served by the platform under /app (portal/index.ts).
 * `npm run build` runs it after the server's compile.
 */
import path from 'node:path';
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

export default defineConfig({
  root: __dirname,
  base: '/app/',
  plugins: [react()],
  build: {
    outDir: path.resolve(__dirname, '../../dist/portal-web'),
    emptyOutDir: true,
    // Vendor code changes less often than the app's: separate chunks stay cached across releases.
    rollupOptions: {
      output: {
        manualChunks: {
          react: ['react', 'react-dom', 'react-router'],
          mantine: ['@mantine/core', '@mantine/hooks', 'dayjs'],
          charts: ['@mantine/charts', 'recharts'],
        },
      },
    },
    chunkSizeWarningLimit: 900,
  },
  server: {
    // `npx vite --config portal/web/vite.config.ts` during development, against a platform on :8080.
    proxy: { '/fhir': 'http://127.0.0.1:8080', '/auth': 'http://127.0.0.1:8080' },
  },
});
