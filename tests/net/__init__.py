"""Multi-host tests: publisher and subscribers in network namespaces joined by veth links."""
