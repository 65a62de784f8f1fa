import { defineConfig } from '@playwright/test';
import base from './playwright.config';

// Benchmarks in the browser (scripts/bench.sh), not part of the test suite.
export default defineConfig({ ...base, testDir: './bench', testMatch: '*.bench.ts', timeout: 120_000 });
