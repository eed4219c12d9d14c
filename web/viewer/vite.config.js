// Bundles the reader workstation for corelab, which serves web/viewer/dist under /viewer/.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const here = dirname(fileURLToPath(import.meta.url));

export default defineConfig({
  base: '/viewer/',
  // The workstation page is rendered by corelab (it checks the task first); vite builds only the
  // script and its chunks, with a manifest corelab reads to find the entry file.
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    manifest: true,
    target: 'es2022',
    chunkSizeWarningLimit: 8000,
    rollupOptions: { input: join(here, 'src', 'main.js') },
  },
  worker: { format: 'es' },
});
