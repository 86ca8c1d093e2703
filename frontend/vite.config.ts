/// <reference types="vitest/config" />
import { defineConfig } from 'vite';

// Relative base: the built folder works from any static host and any sub-path.
export default defineConfig({
  base: './',
  build: {
    outDir: 'dist',
    target: 'es2022',
    // TF.js (live search) is split out by the dynamic import and never loaded up front.
    chunkSizeWarningLimit: 2000,
  },
  // Unit tests are pure functions on typed arrays plus fetch mocks: no DOM environment needed.
  test: {
    include: ['src/**/*.test.ts'],
    environment: 'node',
  },
});
