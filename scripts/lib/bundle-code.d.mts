/** The bundle's exports, loaded with its code cache when V8 accepts it. */
export function loadBundle(file: string, cacheFile: string): Record<string, unknown>;
/** The code cache of the bundle's top level. */
export function codeCache(file: string): Buffer;
/** Whether V8, under this process's flags, takes `cacheFile` for `file`. */
export function cacheAccepted(file: string, cacheFile: string): boolean;
