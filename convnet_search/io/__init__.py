"""Files: image decoding, dataset listing, the stage store, shards, the work and bundle folders."""
