// What can go wrong reading a bundle. Its own module, below every reader (provider.ts and the
// checks it calls: atlas.ts, curate.ts), so that they can all throw it without importing each other.

/** A bundle file that is missing, malformed or inconsistent with the manifest; the message names its URL. */
export class BundleError extends Error {
  constructor(
    readonly url: string,
    message: string,
  ) {
    super(`${url}: ${message}`);
    this.name = 'BundleError';
  }
}

/**
 * The bundle on the server is no longer the one this page loaded (e.g. `make precompute` replaced
 * the data folder while the explorer was open): its manifest.json now says something else. No
 * file of the old manifest can be trusted any more; only a reload helps.
 */
export class BundleChangedError extends Error {
  constructor(readonly manifestUrl: string) {
    super('the data on the server changed since this page was loaded (the bundle was rebuilt): reload the page to see the new data');
    this.name = 'BundleChangedError';
  }
}
