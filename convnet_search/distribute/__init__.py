"""Who runs the heavy work: this process or a Ray cluster, behind one Distributor signature."""
