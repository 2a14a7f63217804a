// The connection caches and what decides what goes into them.
export * from './compact.js';
export * from './external-cache.js';
export * from './filter.js';
export * from './internal-cache.js';
