"""The math with no I/O: neighbour kernels, metrics, evaluation, atlas, incremental updates, UMAP, browser-feature encoding."""
