"""AgCluster control plane."""
