"""Who runs the heavy work: this process or a Ray cluster, behind one Distributor signature."""

RAY_INSTALL_HINT = "pip install 'convnet-search[ray]'"  # Ray is optional: the extra that brings it
