"""The networks: model registry, weights, pooling, preprocessing, TF.js export."""
