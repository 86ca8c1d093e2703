"""convnet-search: semantic image search with pretrained CNNs."""
__version__ = "0.1.0"
