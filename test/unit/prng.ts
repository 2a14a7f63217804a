// The simulations' seeded PRNG: the one the soak uses too (scripts/lib/prng.mjs).
export { mulberry32 } from '../../scripts/lib/prng.mjs';
